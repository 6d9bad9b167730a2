"""A daily DAG with two quick tasks: the backfill test runs it over a date range."""

from datetime import datetime

from airflow.sdk import DAG, task

with DAG("sbx_daily", schedule="@daily", start_date=datetime(2021, 1, 1), catchup=False):

    @task
    def extract() -> None:
        pass

    @task
    def load() -> None:
        pass

    extract() >> load()
