"""A run that fails: one task raises with a recognisable message, its downstream never runs."""

from datetime import datetime

from airflow.sdk import DAG, task

with DAG("sbx_fail", schedule=None, start_date=datetime(2021, 1, 1), catchup=False):

    @task(retries=0)
    def explode() -> None:
        print("about to fail on purpose")
        raise RuntimeError("sbx-deliberate-failure")

    @task
    def after() -> None:
        pass

    explode() >> after()
