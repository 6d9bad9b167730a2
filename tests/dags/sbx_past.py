"""Daily, each day's task waits for the previous day's (depends_on_past): the `mark` technique.

Marking day N's `work` failed keeps day N+1's `work` from ever starting, while day N-1 runs.
"""

from datetime import datetime

from airflow.sdk import DAG, task

with DAG(
    "sbx_past", schedule="@daily", start_date=datetime(2021, 1, 1), catchup=False,
    default_args={"depends_on_past": True},
):

    @task
    def work() -> None:
        pass

    @task
    def publish() -> None:
        pass

    work() >> publish()
