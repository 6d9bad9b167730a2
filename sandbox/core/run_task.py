"""`sandbox run-task DAG TASK --date D`: one task of a DAG, for real, without scheduling the rest.

It is Airflow's own `airflow tasks test` (the task runs in-process through the real operator, a
KubernetesPodOperator task as a pod on the simulated virtual node; no dependencies checked, no
other task scheduled; a DAG run created for it is deleted afterwards), run where Airflow runs:
the scheduler container, with its DAG folder, database and kubeconfig. Its log streams to the
terminal. `airflow tasks test` exits 0 even when the task failed (airflow 3.3.2,
airflow/cli/commands/task_command.py `task_test`: it calls `_run_task(ti=..., ...)` and returns),
so RUNNER wraps that call to read the task instance's final state and exits with it: 0 success,
1 anything else; 2 when Airflow refused before running it (unknown DAG or task), in one line.
`task_test`'s `finally` deletes the run it created; that delete can race the scheduler (seen:
StaleDataError on `dag_run`) after the task ran: the task's state still decides the exit code.
The wrapper is checked against the pinned Airflow on the native test stack.
"""

from __future__ import annotations

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
