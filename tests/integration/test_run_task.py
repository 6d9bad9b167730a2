"""`sandbox run-task`'s runner on the native Airflow stack: one task runs for real (its log on the
terminal), nothing else of the DAG runs, and the exit code is the task's: 0 success, 1 failure
(where plain `airflow tasks test` exits 0 either way)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sandbox.adapters.airflow_api import AirflowApi
from sandbox.core.run_task import runner_argv
from sandbox.state import ADMIN_USER
from support import task_states, wait_run

pytestmark = pytest.mark.integration


def run_task(airflow_stack, dag_id: str, task_id: str, date: str) -> subprocess.CompletedProcess[str]:
    argv = runner_argv(dag_id, task_id, date)
    argv[0] = str(Path(sys.executable).parent / "python")  # the Airflow installation's python
    return subprocess.run(argv, env=airflow_stack.env, capture_output=True, text=True, timeout=600)


def test_a_task_that_succeeds_exits_0_and_runs_alone(airflow_stack) -> None:
    done = run_task(airflow_stack, "sbx_noop3", "second", "2021-10-01")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "sandbox run-task: sbx_noop3.second 2021-10-01: success" in done.stderr
    log = done.stdout + done.stderr
    assert "task_id=second" in log or "sbx_noop3.second" in log
    assert "task_id=first" not in log and "task_id=third" not in log  # nothing else of the DAG ran
    with AirflowApi(airflow_stack.url, ADMIN_USER, airflow_stack.admin_password) as api:
        day = datetime(2021, 10, 1, tzinfo=UTC)
        assert api.list_runs("sbx_noop3", start=day, end=day) == []  # no run left behind
    # the scheduler never examined the temporary run, so its loop did not die on the deleted row
    assert airflow_stack.procs["scheduler"].poll() is None


def test_a_task_that_fails_exits_1_with_its_log(airflow_stack) -> None:
    failed = run_task(airflow_stack, "sbx_fail", "explode", "2021-10-01")
    assert failed.returncode == 1, failed.stderr[-3000:]
    assert "sbx-deliberate-failure" in failed.stdout + failed.stderr
    assert "sandbox run-task: sbx_fail.explode 2021-10-01: failed" in failed.stderr
    assert airflow_stack.procs["scheduler"].poll() is None


def test_an_unknown_task_is_refused_in_one_line_with_exit_2(airflow_stack) -> None:
    refused = run_task(airflow_stack, "sbx_noop3", "no_such_task", "2021-10-01")
    assert refused.returncode == 2, refused.stdout[-2000:] + refused.stderr[-2000:]
    assert "no_such_task" in refused.stderr and "Traceback" not in refused.stderr


def test_a_finished_run_of_the_date_reruns_just_that_task_through_the_scheduler(sandbox, api, tmp_path) -> None:
    """The inner loop's case: `sandbox run-task` (the console script) on a date that has a run
    clears only that task there and follows it; its exit code is the task's, not the run's."""
    from sandbox.core.run_task import run_to_reuse

    flag = tmp_path / "flag"
    day = datetime(2021, 4, 1, tzinfo=UTC)
    api.set_paused("sbx_flag", False)
    api.trigger("sbx_flag", day, {"flag": str(flag)})

    run = wait_run(api, "sbx_flag", day, ("success", "failed"), timeout=180)
    assert task_states(api, run) == {"prepare": ("success", 1), "check": ("failed", 1), "report": ("upstream_failed", 0)}
    # `report`'s upstream failed in that run: not re-runnable there, `tasks test` would run it
    assert run_to_reuse(api, "sbx_flag", "report", day) is None
    assert run_to_reuse(api, "sbx_flag", "check", day).run_id == run.run_id

    failed = sandbox("run-task", "sbx_flag", "check", "--date", "2021-04-01", "--no-lint")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "sandbox run-task: sbx_flag.check 2021-04-01: failed" in failed.stderr
    flag.write_text("go")
    done = sandbox("run-task", "sbx_flag", "check", "--date", "2021-04-01", "--no-lint")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "again in its run of 2021-04-01" in done.stderr and "sbx_flag.check 2021-04-01: success" in done.stderr
    # only `check` ran again (try 3); `report` after it was not scheduled, and the run says so
    assert task_states(api, run) == {"prepare": ("success", 1), "check": ("success", 3), "report": ("upstream_failed", 0)}
    unknown = sandbox("run-task", "sbx_flag", "no_such_task", "--date", "2021-04-01", "--no-lint")
    assert unknown.returncode == 2 and "no_such_task" in unknown.stderr and "Traceback" not in unknown.stderr
