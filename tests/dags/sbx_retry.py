"""A task that fails on its first try and succeeds on its second."""

from datetime import datetime, timedelta

from airflow.sdk import DAG, get_current_context, task

with DAG("sbx_retry", schedule=None, start_date=datetime(2021, 1, 1), catchup=False):

    @task(retries=1, retry_delay=timedelta(seconds=0))
    def flaky() -> None:
        try_number = get_current_context()["ti"].try_number
        if try_number < 2:
            raise RuntimeError(f"failing try {try_number} on purpose")
        print(f"succeeded on try {try_number}")

    flaky()
