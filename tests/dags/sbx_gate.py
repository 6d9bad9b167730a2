"""Holds its first try mid-run: reading the FIFO named by conf["gate"] blocks until written.

The worker-kill test kills the Celery worker while try 1 is blocked here, restarts the worker,
and expects the retry (which does not block) to finish the run.
"""

from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, get_current_context, task

with DAG("sbx_gate", schedule=None, start_date=datetime(2021, 1, 1), catchup=False):

    @task(retries=2, retry_delay=timedelta(seconds=0))
    def hold() -> None:
        ctx = get_current_context()
        if ctx["ti"].try_number == 1:
            Path(ctx["dag_run"].conf["gate"]).read_text()  # blocks until the test writes

    @task
    def after() -> None:
        pass

    hold() >> after()
