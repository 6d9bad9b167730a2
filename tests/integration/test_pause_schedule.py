"""`sandbox pause|unpause` against a schedule: a stack of its own with `scheduled_runs = true`.

The session stack runs only triggered runs (use_job_schedule off), where a schedule never starts
anything; this module needs the scheduler to create runs from a schedule. It loads two DAGs
only (a @continuous one and a no-op to prove the scheduler kept looping), so it starts fast.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest

from airflow_stack import AirflowStack, ServicesUnavailable, services
from sandbox.waiting import NotReady, wait_until
from support import REPO, require

SANDBOX = str(Path(sys.executable).parent / "sandbox")


@pytest.fixture(scope="module")
def scheduled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    dags = tmp_path_factory.mktemp("scheduled-dags")
    for name in ("sbx_continuous.py", "sbx_noop3.py"):
        shutil.copy(REPO / "tests" / "dags" / name, dags / name)
    with ExitStack() as stack:
        try:
            found = stack.enter_context(services())
        except ServicesUnavailable as exc:
            require(False, str(exc))
        yield stack.enter_context(
            AirflowStack(found, tmp_path_factory.mktemp("scheduled"), dags_source=dags, scheduled_runs=True)
        )


def _cli(stack: AirflowStack, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([SANDBOX, *args], env=stack.cli_env(), capture_output=True, text=True, timeout=180)
    print(f"$ sandbox {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def _runs(stack: AirflowStack) -> list[dict]:
    proc = _cli(stack, "runs", "sbx_continuous", "--json")
    if "cannot reach the Airflow API" in proc.stderr:  # a fresh API server stalls while the
        raise NotReady(proc.stderr.strip())  # first task starts (polled inside wait_until)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["runs"]


def _started_after(stack: AirflowStack, moment: datetime) -> list[dict]:
    return [r for r in _runs(stack) if r["start_date"] and datetime.fromisoformat(r["start_date"]) > moment]


def test_pause_stops_a_schedule_and_unpause_resumes_it(scheduled: AirflowStack) -> None:
    def succeeded(count: int):
        def check() -> list[dict]:
            done = [r for r in _runs(scheduled) if r["state"] == "success"]
            if len(done) >= count:
                return done
            raise NotReady(f"{len(done)} successful runs")

        return check

    assert _cli(scheduled, "unpause", "sbx_continuous").returncode == 0
    wait_until(succeeded(1), what="a scheduled run", timeout=180, interval=1)

    assert _cli(scheduled, "pause", "sbx_continuous").returncode == 0
    paused_at = datetime.now(UTC)
    # A whole triggered run of another DAG, start to success: the scheduler looped many times.
    assert _cli(scheduled, "run-dag", "sbx_noop3", "--date", "2021-01-05", "--no-lint").returncode == 0
    assert _started_after(scheduled, paused_at) == []

    assert _cli(scheduled, "unpause", "sbx_continuous").returncode == 0
    resumed_at = datetime.now(UTC)

    def resumed() -> list[dict]:
        started = [r for r in _started_after(scheduled, resumed_at) if r["state"] == "success"]
        if started:
            return started
        raise NotReady("no run started since unpause")

    [first, *_] = wait_until(resumed, what="a run after unpause", timeout=120, interval=1)
    assert first["run_type"] == "scheduled"

    everything = _cli(scheduled, "pause", "--all", "--json")
    assert everything.returncode == 0, everything.stderr
    assert {(d["dag_id"], d["paused"]) for d in json.loads(everything.stdout)["dags"]} == {
        ("sbx_continuous", True), ("sbx_noop3", True),
    }
