"""Pure parts of run-dag/backfill: dates, results, DAG-file matching, CLI input errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from sandbox.adapters.airflow_api import Backfill, DagRun, ImportErrorRecord
from sandbox.config import load_settings
from sandbox.core.dates import format_logical_date, parse_logical_date
from sandbox.core.follow import BackfillSnapshot
from sandbox.core.runs import BackfillResult, DateResult, RunResult, TaskSummary, _import_error_for, _mentions
from sandbox.errors import UsageError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "airflow"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-12-01", datetime(2021, 12, 1, tzinfo=UTC)),
        ("2021-12-01T06:30:00+01:00", datetime(2021, 12, 1, 5, 30, tzinfo=UTC)),
        ("2021-12-01T06:30:00Z", datetime(2021, 12, 1, 6, 30, tzinfo=UTC)),
    ],
)
def test_dates_are_midnight_utc_or_explicit_offsets(text: str, expected: datetime) -> None:
    parsed = parse_logical_date(text)
    assert parsed == expected and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["2021-13-01", "yesterday", "20211201", "2021-12-01T06:00", ""])
def test_malformed_or_ambiguous_dates_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError) as error:
        parse_logical_date(text, option="--start")
    assert error.value.exit_code == 2 and "--start" in error.value.message and error.value.hint


def test_dates_print_as_days_when_midnight() -> None:
    assert format_logical_date(datetime(2021, 12, 1, tzinfo=UTC)) == "2021-12-01"
    local = datetime(2021, 12, 1, 6, tzinfo=timezone(timedelta(hours=1)))
    assert format_logical_date(local) == "2021-12-01T05:00:00+00:00"
    assert format_logical_date(None) == "-"


def _load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def test_backfill_is_finished_when_its_runs_are_even_before_completed_at() -> None:
    backfill = Backfill.from_json(_load("backfill_created"))
    assert backfill.completed_at is None  # the scheduler sets it on a 30 s timer
    done = tuple(DagRun.from_json(r) for r in _load("dag_runs_backfill")["dag_runs"])
    assert BackfillSnapshot(backfill, done).finished
    queued = DagRun.from_json(_load("dag_run_triggered"))
    assert not BackfillSnapshot(backfill, (*done, queued)).finished
    assert not BackfillSnapshot(backfill, ()).finished


def test_results_say_ok_only_on_success() -> None:
    task = TaskSummary("t", "failed", 1, 0.1, ("boom",))
    failed = RunResult("d", "r", datetime(2021, 12, 1, tzinfo=UTC), "failed", "http://x", (task,))
    assert not failed.ok and failed.to_json()["tasks"][0]["log_tail"] == ["boom"]
    assert not BackfillResult("d", 1, (), "u").ok  # nothing ran is not a success
    ok = BackfillResult("d", 1, (DateResult(None, "r", "success", 1.0),), "u")
    assert ok.ok and ok.to_json()["runs"][0]["state"] == "success"


def test_dag_ids_are_matched_to_local_files_and_their_import_errors(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    (dags / "team").mkdir(parents=True)
    (dags / "team" / "pipeline.py").write_text('DAG("recommend", schedule=None)\n')
    (dags / "other.py").write_text('DAG("other")\n')
    settings = load_settings(tmp_path, environ={}, overrides={"dags_folder": str(dags)})
    files = _mentions(settings, "recommend")
    assert files == [dags / "team" / "pipeline.py"]
    assert _mentions(settings, "missing") == []
    errors = [ImportErrorRecord("other.py", "dags-folder", "x"), ImportErrorRecord("team/pipeline.py", "dags-folder", "tb")]
    assert _import_error_for(errors, files, settings) == errors[1]
    assert _import_error_for(errors[:1], files, settings) is None
    recorded = ImportErrorRecord.from_json(json.loads((FIXTURES / "import_errors.json").read_text())["import_errors"][0])
    assert recorded.timestamp == datetime(2026, 11, 25, 12, 36, 47, 231421, tzinfo=UTC)  # what staleness compares


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run-dag", "d", "--date", "2021-02-30"], "is not a valid date"),
        (["run-dag", "d", "--date", "2021-12-01", "--conf", "{oops"], "--conf is not valid JSON"),
        (["run-dag", "d", "--date", "2021-12-01", "--conf", "[1]"], "--conf must be a JSON object"),
        (["backfill", "d", "--start", "2021-12-01", "--end", "soon"], "--end 'soon' is not a valid date"),
    ],
)
def test_cli_rejects_bad_input_before_touching_airflow(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from sandbox.cli.app import main

    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert message in err and "hint:" in err
