"""Parsers of the Airflow API adapter, against responses recorded from a real Airflow 3.3
(tests/fixtures/airflow/record.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sandbox.adapters.airflow_api import (
    Backfill,
    Dag,
    DagRun,
    ImportErrorRecord,
    LogChunk,
    TaskInstance,
    detail_text,
    format_time,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "airflow"


def load(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def test_dags_parse_paused_state_and_schedule() -> None:
    dags = {d.dag_id: d for d in map(Dag.from_json, load("dags")["dags"])}
    assert {"sbx_noop3", "sbx_daily", "sbx_fail"} <= set(dags)
    assert dags["sbx_daily"].schedule == "0 0 * * *" and dags["sbx_noop3"].schedule is None
    single = Dag.from_json(load("dag"))
    assert single.dag_id == "sbx_noop3" and single.relative_fileloc == "sbx_noop3.py"
    assert single.has_import_errors is False


def test_dag_runs_parse_dates_as_aware_utc() -> None:
    triggered = DagRun.from_json(load("dag_run_triggered"))
    assert triggered.state == "queued" and not triggered.finished
    assert triggered.run_id.startswith("manual__") and triggered.run_type == "manual"
    assert triggered.logical_date == datetime(2021, 12, 1, tzinfo=UTC)
    done = DagRun.from_json(load("dag_run_success"))
    assert done.finished and done.end_date is not None and done.start_date is not None
    cleared = DagRun.from_json(load("dag_run_cleared"))
    assert cleared.run_id == triggered.run_id and cleared.state == "queued"
    by_date = [DagRun.from_json(r) for r in load("dag_runs_by_date")["dag_runs"]]
    assert [r.run_id for r in by_date] == [triggered.run_id]


def test_task_instances_parse_states_and_tries() -> None:
    ok = [TaskInstance.from_json(t) for t in load("task_instances_success")["task_instances"]]
    assert sorted(t.key for t in ok) == ["first", "second", "third"]
    assert all(t.finished and t.try_number == 1 and not t.runs_in_a_pod for t in ok)
    failed = {t.task_id: t for t in map(TaskInstance.from_json, load("task_instances_failed")["task_instances"])}
    assert failed["explode"].state == "failed" and failed["explode"].try_number == 1
    assert failed["after"].state == "upstream_failed" and failed["after"].try_number == 0
    (retried,) = map(TaskInstance.from_json, load("task_instances_retry")["task_instances"])
    assert (retried.state, retried.try_number, retried.max_tries) == ("success", 2, 1)


def test_failed_log_keeps_the_exception_and_drops_markers() -> None:
    chunk = LogChunk.from_json(load("log_failed"))
    assert chunk.token is None
    assert "  RuntimeError: sbx-deliberate-failure" in chunk.lines
    assert any("about to fail on purpose" in line for line in chunk.lines)
    assert not any("::group::" in line or "attempt=1.log" in line for line in chunk.lines)


def test_log_continuation_token_walks_a_growing_log() -> None:
    first, rest = LogChunk.from_json(load("log_running")), LogChunk.from_json(load("log_running_rest"))
    assert first.token and rest.token is None
    assert not any("Returned value" in line for line in first.lines)
    assert any("Done. Returned value was: None" in line for line in rest.lines)


def test_import_errors_carry_the_traceback() -> None:
    (error,) = map(ImportErrorRecord.from_json, load("import_errors")["import_errors"])
    assert error.filename == "sbx_broken.py"
    assert error.stack_trace.startswith("Traceback")
    assert "ModuleNotFoundError: No module named 'sbx_module_that_does_not_exist'" in error.stack_trace


def test_backfill_parses() -> None:
    backfill = Backfill.from_json(load("backfill_created"))
    assert (backfill.dag_id, backfill.max_active_runs, backfill.reprocess_behavior) == ("sbx_daily", 2, "none")
    assert backfill.from_date == datetime(2021, 6, 1, tzinfo=UTC)
    assert backfill.to_date == datetime(2021, 6, 3, tzinfo=UTC)
    runs = [DagRun.from_json(r) for r in load("dag_runs_backfill")["dag_runs"]]
    assert [r.run_type for r in runs] == ["backfill"] * 3


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("dag_404", "The Dag with ID: `no_such_dag` was not found"),
        ("dag_run_422", "logical_date: Input should be a valid datetime or date, input is too short"),
        ("dag_run_409", "Unique constraint violation"),
        ("backfill_409", "There is already a running backfill for dag sbx_daily"),
        ("backfill_not_periodic", "sbx_noop3 has a non-periodic schedule that does not support backfills"),
    ],
)
def test_error_details_of_every_shape_become_one_line(fixture: str, expected: str) -> None:
    assert detail_text(load(fixture)["body"]) == expected


def test_naive_datetimes_never_reach_the_api() -> None:
    assert format_time(datetime(2021, 12, 1, tzinfo=UTC)) == "2021-12-01T00:00:00+00:00"
    with pytest.raises(ValueError):
        format_time(datetime(2021, 12, 1))
