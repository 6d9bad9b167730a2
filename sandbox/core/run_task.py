"""`sandbox run-task DAG TASK --date D`: one task of a DAG, for real, without scheduling the rest.

Two ways, chosen by `run_to_reuse`. When a finished run of that date exists, its upstream tasks
of TASK all succeeded (or were skipped) and the DAG is not paused, the task is cleared in that run
and the scheduler runs it again through Celery (`sandbox clear --task`, followed live): the
production path, and fast — measured on the native stack, a no-op task 1.0–1.2 s against 6.5–6.9 s
for `tasks test`, which builds Airflow's in-process execution API (~2.8 s) after ~3.7 s of imports.
That is the inner loop's case: run the DAG once, then iterate on one step.

Otherwise (no such run, or `--fresh`) it is Airflow's own `airflow tasks test` (the task runs
in-process through the real operator, a KubernetesPodOperator task as a pod on the simulated
virtual node; no dependencies checked, no other task scheduled; a DAG run created for it is
deleted afterwards), run where Airflow runs:
the scheduler container, with its DAG folder, database and kubeconfig. Its log streams to the
terminal. `airflow tasks test` exits 0 even when the task failed (airflow 3.3.2,
airflow/cli/commands/task_command.py `task_test`: it calls `_run_task(ti=..., ...)` and returns),
so RUNNER wraps that call to read the task instance's final state and exits with it: 0 success,
1 anything else; 2 when Airflow refused before running it (unknown DAG or task), in one line.
`task_test`'s `finally` deletes the run it created. A live scheduler examined that run and raced
the delete (seen: StaleDataError here, and the scheduler's own loop dying on ObjectDeletedError):
RUNNER creates it with a run_after the scheduler never reaches; should the delete still fail after
the task ran, the task's state decides the exit code.
The wrapper is checked against the pinned Airflow on the native test stack.
"""

from __future__ import annotations

from datetime import datetime

from sandbox.adapters.airflow_api import AirflowApi, DagRun

REUSABLE_UPSTREAM = ("success", "skipped")

RUNNER = """
import sys
from airflow.cli.commands import task_command

dag_id, task_id, when = sys.argv[1:4]
states = []
run_one = task_command._run_task

def recording(*, ti, task, **kwargs):
    try:
        return run_one(ti=ti, task=task, **kwargs)
    finally:
        try:
            states.append(str(getattr(ti.state, "value", ti.state)))
        except Exception:  # a row gone under it: the task ran, its state unknown (exit 1)
            states.append("unknown")

task_command._run_task = recording

# `tasks test` creates a RUNNING manual run for the date when there is none, and deletes it at the
# end. The live scheduler examines RUNNING runs whose run_after has come (airflow 3.3.2,
# models/dagrun.py `get_running_dag_runs_to_examine`): it would schedule the DAG's other tasks in
# that run, and its loop died on the deleted row (ObjectDeletedError, seen on the native stack).
# A run_after far in the future keeps the scheduler away from the run; nothing else reads it.
from datetime import timedelta
from airflow.utils import timezone
create_run = task_command.get_or_create_dagrun

def unseen_by_the_scheduler(**kwargs):
    kwargs["run_after"] = timezone.utcnow() + timedelta(days=36500)
    return create_run(**kwargs)

task_command.get_or_create_dagrun = unseen_by_the_scheduler
sys.argv = ["airflow", "tasks", "test", dag_id, task_id, when]
from airflow.__main__ import main
try:
    main()
except Exception as exc:
    if not states:  # before the task ran: an unknown DAG or task, a bad date
        print(f"sandbox run-task: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    # after it: Airflow's own clean-up (deleting the run it made) can lose a race with the
    # scheduler; the task's outcome stands, the run may be left behind
    print(f"sandbox run-task: after the task, Airflow's clean-up failed ({type(exc).__name__});"
          f" its run for {when} may be left (`sandbox runs {dag_id}`)", file=sys.stderr, flush=True)
state = states[-1] if states else "not run"
print(f"sandbox run-task: {dag_id}.{task_id} {when}: {state}", file=sys.stderr, flush=True)
sys.exit(0 if state == "success" else 1)
"""


def runner_argv(dag_id: str, task_id: str, logical_date: str) -> list[str]:
    """The command, run with the Airflow installation's python, that runs the task once."""
    return ["python", "-c", RUNNER, dag_id, task_id, logical_date]


def run_to_reuse(api: AirflowApi, dag_id: str, task_id: str, logical_date: datetime) -> DagRun | None:
    """The finished, unpaused run of that date in which `task_id` can run again as it stands:
    every task directly upstream of it succeeded or was skipped there. None: use `tasks test`."""
    dag = api.get_dag(dag_id)
    if dag is None or dag.is_paused:
        return None
    finished = [r for r in api.list_runs(dag_id, start=logical_date, end=logical_date) if r.finished]
    if not finished:
        return None
    run = finished[-1]
    upstream = {task for task, downstream in api.task_graph(dag_id).items() if task_id in downstream}
    states = {ti.task_id: ti.state for ti in api.task_instances(dag_id, run.run_id)}
    if task_id not in states or any(states.get(task) not in REUSABLE_UPSTREAM for task in upstream):
        return None
    return run
