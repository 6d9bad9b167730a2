"""Three no-op tasks in a chain: the run-overhead benchmark and the success test."""

from datetime import datetime

from airflow.sdk import DAG, task

with DAG("sbx_noop3", schedule=None, start_date=datetime(2021, 1, 1), catchup=False):

    @task
    def first() -> None:
        pass

    @task
    def second() -> None:
        pass

    @task
    def third() -> None:
        pass

    first() >> second() >> third()
