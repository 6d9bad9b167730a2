"""The sample pipelines' step code as plain Python against a real Azurite (the npm package).

Each step is called through its CLI entry point (`main(argv)`) with the arguments the DAG gives
its pod; the compare branch is the DAG's own function. Outputs are checked for a date, then the
whole pipeline is rerun and must leave byte-identical blobs.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from azurite import running_azurite, snapshot, upload
from support import REPO

from sandbox.core import blob

STEPS_SOURCE = REPO / "sample_dags" / "images" / "steps"
DAGS = REPO / "sample_dags"
DATE = "2021-12-01"
REC = f"{blob.BLOB_CONTAINER}/recommend/{DATE}"
TCD = f"{blob.BLOB_CONTAINER}/train_compare_deploy/{DATE}"


@pytest.fixture(scope="module")
def connection() -> Iterator[str]:
    with running_azurite() as conn:
        yield conn


@pytest.fixture
def steps(connection: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The `steps` package from its image folder, talking to this module's Azurite."""
    monkeypatch.setenv(blob.BLOB_ENV, connection)
    monkeypatch.syspath_prepend(str(STEPS_SOURCE))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # keep the build context clean
    package = importlib.import_module("steps")
    common = importlib.import_module("steps.common")
    common.service.cache_clear()
    yield package
    common.service.cache_clear()


def run_step(capsys: pytest.CaptureFixture[str], module: str, *argv: str) -> dict[str, Any]:
    """Run one step's CLI; it must exit 0 and print exactly one JSON line of metrics."""
    main = importlib.import_module(f"steps.{module}").main
    capsys.readouterr()
    code = main(list(argv))
    out = capsys.readouterr()
    assert code == 0, out.err
    lines = out.out.splitlines()
    assert len(lines) == 1, out.out
    return json.loads(lines[0])


def run_recommend(capsys: pytest.CaptureFixture[str], date: str = DATE) -> list[dict[str, Any]]:
    data = f"{blob.BLOB_CONTAINER}/recommend/{date}"
    plan = [
        ("preprocess", "raw/interactions.jsonl", "features.json"),
        ("inference", "features.json", "scores.json"),
        ("postprocess", "scores.json", "recommendations.csv"),
    ]
    return [
        run_step(
            capsys, step, "--date", date, "--input", f"{data}/{src}", "--output", f"{data}/{dst}"
        )
        for step, src, dst in plan
    ]


def dag_module(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("TASK_IMAGE_REGISTRY", "registry.example/ml")
    monkeypatch.setenv("TASK_IMAGE_TAG", "test")
    monkeypatch.syspath_prepend(str(DAGS))
    return importlib.import_module(name)


def run_train_compare_deploy(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[list[dict[str, Any]], str]:
    def step(module: str, src: str, dst: str, *extra: str) -> dict[str, Any]:
        args = ["--date", DATE, "--input", f"{TCD}/{src}", "--output", f"{TCD}/{dst}", *extra]
        return run_step(capsys, module, *args)

    metrics = [
        step("extract", "raw/measurements.jsonl", "dataset.json"),
        step("features", "dataset.json", "features.json"),
        step("train", "features.json", "model_a/", "--model", "a"),
        step("train", "features.json", "model_b/", "--model", "b"),
    ]
    dag = dag_module("train_compare_deploy", monkeypatch)
    # compare's choice from the train steps' printed metrics lines (the worker's XComs)
    chosen = "deploy_model_" + dag.better_model({"a": metrics[2], "b": metrics[3]})
    winner = chosen.removeprefix("deploy_model_")
    metrics.append(step("deploy", f"model_{winner}/", "deployment.json"))
    return metrics, chosen


def test_recommend_seeds_a_fresh_date_and_writes_every_output(
    steps: ModuleType, connection: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pre, inf, post = run_recommend(capsys)
    assert pre == {
        "step": "preprocess",
        "date": DATE,
        "interactions": 258,
        "users": 40,
        "items": 24,
    }
    assert inf["step"] == "inference" and inf["users"] == 40 and inf["scored_pairs"] == 400
    assert post == {
        "step": "postprocess",
        "date": DATE,
        "rows": 200,
        "users": 40,
        "distinct_items": 21,
    }
    blobs = snapshot(connection, f"{REC}/")
    assert sorted(blobs) == [
        f"recommend/{DATE}/{n}"
        for n in ("features.json", "raw/interactions.jsonl", "recommendations.csv", "scores.json")
    ]
    seen = json.loads(blobs[f"recommend/{DATE}/features.json"])["users"]
    rows = list(
        csv.DictReader(io.StringIO(blobs[f"recommend/{DATE}/recommendations.csv"].decode()))
    )
    assert len(rows) == post["rows"]
    for row in rows:
        assert row["date"] == DATE
        assert row["item"] not in seen[row["user"]], "recommended an item the user already has"
    for user in seen:
        ranked = [float(r["score"]) for r in rows if r["user"] == user]
        assert ranked == sorted(ranked, reverse=True)


def test_preprocess_uses_existing_input_as_given(
    steps: ModuleType, connection: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = f"{blob.BLOB_CONTAINER}/recommend/2021-12-02"
    lines = [
        {"user": "u1", "item": "a", "event": "view"},
        {"user": "u1", "item": "a", "event": "purchase"},
        {"user": "u1", "item": "b", "event": "click"},
        {"user": "u2", "item": "b", "event": "view"},
    ]
    upload(
        connection,
        f"{data}/raw/interactions.jsonl",
        "".join(json.dumps(x) + "\n" for x in lines).encode(),
    )
    metrics = run_step(
        capsys,
        "preprocess",
        "--date",
        "2021-12-02",
        "--input",
        f"{data}/raw/interactions.jsonl",
        "--output",
        f"{data}/features.json",
    )
    assert metrics == {
        "step": "preprocess",
        "date": "2021-12-02",
        "interactions": 4,
        "users": 2,
        "items": 2,
    }
    written = snapshot(connection, f"{data}/features.json")["recommend/2021-12-02/features.json"]
    assert json.loads(written) == {
        "date": "2021-12-02",
        "users": {"u1": {"a": 6, "b": 3}, "u2": {"b": 1}},
    }


def test_recommend_rerun_is_byte_identical(
    steps: ModuleType, connection: str, capsys: pytest.CaptureFixture[str]
) -> None:
    first_metrics = run_recommend(capsys, "2021-12-03")
    first = snapshot(connection, f"{blob.BLOB_CONTAINER}/recommend/2021-12-03/")
    second_metrics = run_recommend(capsys, "2021-12-03")
    assert snapshot(connection, f"{blob.BLOB_CONTAINER}/recommend/2021-12-03/") == first
    assert second_metrics == first_metrics
    other_day = run_recommend(capsys, "2021-12-04")
    assert other_day[0] != first_metrics[0], "the synthetic input must depend on the date"


def test_train_compare_deploy_deploys_the_better_model_and_reruns_identically(
    steps: ModuleType,
    connection: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    metrics, chosen = run_train_compare_deploy(capsys, monkeypatch)
    extract, features, train_a, train_b, deploy = metrics
    assert extract == {
        "step": "extract",
        "date": DATE,
        "rows_in": 300,
        "rows_out": 293,
        "dropped": 7,
    }
    assert features == {
        "step": "features",
        "date": DATE,
        "features": 4,
        "train_rows": 234,
        "test_rows": 59,
    }
    # The data has an x1*x3 interaction only model b can express: b must win, clearly.
    assert train_b["rmse"] < 0.5 * train_a["rmse"]
    assert chosen == "deploy_model_b"
    assert deploy == {
        "step": "deploy",
        "date": DATE,
        "model": "b",
        "rmse": train_b["rmse"],
        "r2": train_b["r2"],
    }
    first = snapshot(connection, f"{TCD}/")
    record = json.loads(first[f"train_compare_deploy/{DATE}/deployment.json"])
    assert record["model"] == "b" and record["source"] == f"{TCD}/model_b/"
    assert {
        f"train_compare_deploy/{DATE}/model_{m}/{f}"
        for m in "ab"
        for f in ("model.json", "metrics.json")
    } <= set(first)

    again, chosen_again = run_train_compare_deploy(capsys, monkeypatch)
    assert (again, chosen_again) == (metrics, chosen)
    assert snapshot(connection, f"{TCD}/") == first


def test_a_missing_input_fails_with_one_line_and_no_metrics(
    steps: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    main = importlib.import_module("steps.inference").main
    data = f"{blob.BLOB_CONTAINER}/recommend/1999-01-01"
    code = main(
        [
            "--date",
            "1999-01-01",
            "--input",
            f"{data}/features.json",
            "--output",
            f"{data}/scores.json",
        ]
    )
    out = capsys.readouterr()
    assert code == 1 and out.out == ""
    assert out.err.strip() == (
        f"error: input {data}/features.json does not exist: "
        "did the previous step run for this date?"
    )


def test_without_a_connection_string_the_step_says_so(
    steps: ModuleType, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(blob.BLOB_ENV)
    importlib.import_module("steps.common").service.cache_clear()
    main = importlib.import_module("steps.preprocess").main
    code = main(
        ["--date", DATE, "--input", f"{REC}/raw/interactions.jsonl", "--output", f"{REC}/f.json"]
    )
    assert code == 1
    assert f"{blob.BLOB_ENV} is not set" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, complaint",
    [
        (
            ["--date", "2021-13-01", "--input", f"{REC}/a", "--output", f"{REC}/b"],
            "is not a YYYY-MM-DD date",
        ),
        (
            ["--date", DATE, "--input", "no-container-path", "--output", f"{REC}/b"],
            "is not <container>/<blob path>",
        ),
        (["--date", DATE, "--input", f"{REC}/a"], "the following arguments are required: --output"),
    ],
)
def test_bad_command_lines_are_usage_errors(
    steps: ModuleType, capsys: pytest.CaptureFixture[str], argv: list[str], complaint: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        importlib.import_module("steps.preprocess").main(argv)
    assert exited.value.code == 2
    assert complaint in capsys.readouterr().err
