"""The fault tests' DAG: `hold` is running for as long as the test needs a task mid-run.

conf {"hold": "forever"}: try 1 blocks until its worker dies (the worker-kill test); the retry
returns at once. conf {"hold": N}: try 1 takes N seconds (the Postgres-restart test). `after`
runs only once `hold` succeeded, so a success of the run means nothing was skipped.
"""

import threading
import time
from datetime import datetime, timedelta

from airflow.sdk import DAG, get_current_context, task

with DAG("fault_hold", schedule=None, start_date=datetime(2021, 1, 1), catchup=False):

    @task(retries=2, retry_delay=timedelta(seconds=0))
    def hold() -> str:
        ctx = get_current_context()
        how_long = ctx["dag_run"].conf.get("hold", 0)
        if ctx["ti"].try_number == 1:
            print(f"holding (try 1): {how_long}")
            if how_long == "forever":
                threading.Event().wait()
            else:
                time.sleep(float(how_long))
        return f"released on try {ctx['ti'].try_number}"

    @task
    def after(message: str) -> None:
        print(message)

    after(hold())
