"""`sandbox run-task` on the real cluster: one pod task of a sample DAG runs as a pod on the
virtual node through the real operator (again in the date's run through the scheduler and
Celery, or with --fresh Airflow's `airflow tasks test` in the scheduler container), its pod's
output in the terminal, the task's exit code; nothing else scheduled.

Precondition, as in the e2e workflow: the sample DAGs ran for DATE (the run exists).
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from support import REPO

from e2e_cluster import DATE, SETTINGS, core, virtual_node  # noqa: F401 - fixtures


def run_task(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandbox", "run-task", *args], cwd=REPO, capture_output=True, text=True,
        timeout=SETTINGS.timeouts.run,
    )


@pytest.mark.parametrize("how", ["again in its run", "--fresh"])
def test_a_pod_task_runs_alone_on_the_virtual_node_with_its_output_shown(core: Any, how: str) -> None:
    """The run of DATE exists: by default the task runs again in it through the scheduler and
    Celery; with --fresh through `airflow tasks test` in the scheduler container."""
    def pods() -> dict[str, Any]:
        found = core.list_namespaced_pod(SETTINGS.task_namespace, label_selector="dag_id=recommend")
        return {p.metadata.name: p for p in found.items}

    before = pods()
    done = run_task("recommend", "preprocess", "--date", DATE, *(["--fresh"] if how == "--fresh" else []))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"sandbox run-task: recommend.preprocess {DATE}: success" in done.stderr
    assert ("again in its run of" in done.stderr) is (how != "--fresh")
    log = done.stdout + done.stderr  # the pod's lines come through the task's logger
    metrics = [line for line in log.splitlines() if '"step": "preprocess"' in line]
    assert metrics, "the pod's metrics line is not in the task log: " + log[-3000:]
    new = [p for name, p in pods().items() if name not in before]
    assert [p.metadata.labels.get("task_id") for p in new] == ["preprocess"], "only that task ran"
    assert new[0].spec.node_name == virtual_node(core)


def test_an_unknown_task_is_one_line_and_exit_2() -> None:
    done = run_task("recommend", "no_such_task", "--date", DATE)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert "no_such_task" in done.stderr and "Traceback" not in done.stderr
