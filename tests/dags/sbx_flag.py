"""Fails until the file named by conf["flag"] exists: a failure that `clear` can fix.

prepare -> check (raises while the flag is missing) -> report. Clearing `check` with its
downstream re-runs check and report, and leaves prepare's first try alone.
"""

from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG, get_current_context, task

with DAG("sbx_flag", schedule=None, start_date=datetime(2021, 1, 1), catchup=False):

    @task
    def prepare() -> None:
        pass

    @task(retries=0)
    def check() -> None:
        flag = Path(get_current_context()["dag_run"].conf["flag"])
        if not flag.exists():
            raise RuntimeError(f"flag {flag} missing")

    @task
    def report() -> None:
        pass

    prepare() >> check() >> report()
