"""A new run as soon as the last one ends (@continuous): what pause must stop and unpause resume."""

from datetime import datetime

from airflow.sdk import DAG, task

with DAG(
    "sbx_continuous", schedule="@continuous", start_date=datetime(2021, 1, 1), catchup=False,
    max_active_runs=1,
):

    @task
    def tick() -> None:
        pass

    tick()
