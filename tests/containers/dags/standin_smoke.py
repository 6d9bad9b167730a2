"""Plain-Python DAG the container tier runs through the containerised scheduler, RabbitMQ and
Celery worker: two tasks, the second checks the first's XCom (so the worker really ran Python).
"""

from datetime import datetime

from airflow.sdk import DAG, task

with DAG("standin_smoke", schedule=None, start_date=datetime(2021, 1, 1), catchup=False):

    @task
    def produce() -> int:
        return 6 * 7

    @task
    def check(value: int) -> None:
        if value != 42:
            raise ValueError(f"expected 42 from produce, got {value}")

    check(produce())
