"""Writes the run's conf to the file named by conf["out"]: proves --conf reaches the task."""

import json
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG, get_current_context, task

with DAG("sbx_conf", schedule=None, start_date=datetime(2021, 1, 1), catchup=False):

    @task
    def record_conf() -> None:
        conf = get_current_context()["dag_run"].conf or {}
        Path(conf["out"]).write_text(json.dumps(conf))

    record_conf()
