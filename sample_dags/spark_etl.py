"""Spark ETL through KubernetesPodOperator: submit the driver, follow it, use its output.

submit -> watch_driver -> report. `submit` is a pod running `spark-submit` in cluster mode
without waiting for the application; it pushes the driver's pod name, namespace and submission
id to XCom. `watch_driver` follows the driver pod (deferred on the triggerer) until it succeeds,
or fails with the driver's reason and log tail. The driver and executor pods run on the AKS
virtual node through Spark pod templates. `report` reads the job's summary from blob storage.

Spark never runs in Airflow's image: only the `spark` task image has it. The job reads a day of
orders (seeded on a fresh sandbox) under sandbox/spark_etl/<ds>/ and writes the aggregate next
to it, byte-identical for a date. Trigger with conf {"fail": true} to make the job fail.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task
from sandbox_tasks import BLOB_CONTAINER, BLOB_ENV, task_image
from sandbox_tasks.pods import TASK_NAMESPACE
from sandbox_tasks.spark import SparkDriverSensor, spark_conf, spark_submit

DAG_ID = "spark_etl"
DATA = f"{BLOB_CONTAINER}/{DAG_ID}/{{{{ ds }}}}"  # rendered per run: sandbox/spark_etl/2021-12-01
# Unique per run and try (a retried submit must not collide with the previous driver pod),
# a DNS label well under 63 characters.
DRIVER_POD = "spark-etl-{{ ds_nodash }}-{{ run_id | short_hash }}-{{ ti.try_number }}-driver"


def short_hash(text: str) -> str:
    return hashlib.sha256(str(text).encode()).hexdigest()[:8]


def read_blob_json(path: str) -> Any:
    """`<container>/<blob>` as JSON with the connection string Airflow's processes get
    (azure-storage-blob is in the official apache/airflow image: microsoft-azure extra)."""
    from azure.storage.blob import BlobServiceClient

    logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)
    connection = os.environ.get(BLOB_ENV)
    if not connection:
        raise RuntimeError(f"{BLOB_ENV} is not set for the Airflow worker: cannot read {path}")
    container, _, name = path.partition("/")
    blob = BlobServiceClient.from_connection_string(connection).get_blob_client(container, name)
    return json.loads(blob.download_blob().readall())


@task(task_id="report")
def report(data: str, driver: dict[str, str]) -> dict[str, Any]:
    """The consumer: the job's summary, one JSON line in the task log, returned as XCom."""
    summary = read_blob_json(f"{data}/summary.json")
    print(json.dumps({"step": "report", "driver_pod": driver["driver_pod"], **summary}, sort_keys=True))
    return summary


with DAG(
    dag_id=DAG_ID,
    description="spark-submit in cluster mode from a pod, the driver followed by a sensor",
    schedule="@daily",
    start_date=pendulum.datetime(2021, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params={"fail": Param(False, type="boolean", description="make the Spark job fail")},
    user_defined_filters={"short_hash": short_hash},
    default_args={
        "retries": 1,
        "retry_delay": timedelta(seconds=30),
        "execution_timeout": timedelta(minutes=30),
    },
    tags=["sample", "spark", "virtual-node"],
):
    image = task_image("spark")
    submit = spark_submit(
        task_id="submit",
        image=image,
        application="local:///opt/sandbox/sparkjob/etl.py",
        application_args=[
            "--date", "{{ ds }}",
            "--input", f"{DATA}/raw/orders.jsonl",
            "--output", f"{DATA}/",
            "--fail", "{{ 'true' if params.fail else 'false' }}",
        ],
        conf=spark_conf(image=image, namespace=TASK_NAMESPACE, driver_pod=DRIVER_POD, app_name=DAG_ID),
        # A failed submission leaves nothing running: retrying it is safe (new driver name).
    )
    watch_driver = SparkDriverSensor(
        task_id="watch_driver",
        driver_pod=submit.output["driver_pod"],
        namespace=submit.output["namespace"],
        retries=0,  # a failed driver stays failed: rerun from submit
    )
    report(data=DATA, driver=watch_driver.output)
    submit >> watch_driver
