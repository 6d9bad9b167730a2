"""Train two candidate models, deploy the better one.

extract -> features -> train_model_a & train_model_b (parallel) -> compare -> deploy_model_a |
deploy_model_b. The heavy steps are pods on the AKS virtual node running CLIs of the `steps`
task image; `compare` is a plain Python branch in the Airflow worker that reads the metrics the
train steps wrote to blob storage (sandbox/train_compare_deploy/<ds>/model_<x>/metrics.json).
On a fresh sandbox, extract seeds the day's raw measurements (synthetic, seeded by the date).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG, task
from sandbox_tasks import BLOB_CONTAINER, BLOB_ENV, task_image, virtual_node

DAG_ID = "train_compare_deploy"
DATA = f"{BLOB_CONTAINER}/{DAG_ID}/{{{{ ds }}}}"  # rendered per run
MODELS = ("a", "b")


def step(task_id: str, module: str, source: str, target: str, *extra: str) -> KubernetesPodOperator:
    """One step's pod: `python -m steps.<module> --date <ds> --input ... --output ... [extra]`."""
    return KubernetesPodOperator(
        task_id=task_id,
        image=task_image("steps"),
        cmds=["python", "-m", f"steps.{module}"],
        arguments=[
            "--date", "{{ ds }}",
            "--input", f"{DATA}/{source}",
            "--output", f"{DATA}/{target}",
            *extra,
        ],
        **virtual_node(),
    )


def read_blob_json(path: str) -> Any:
    """`<container>/<blob>` as JSON, with the connection string Airflow's processes get.

    azure-storage-blob is in the official apache/airflow image (the microsoft-azure provider,
    one of its default extras, depends on it) and in the sandbox's Python environment.
    """
    from azure.storage.blob import BlobServiceClient

    # The SDK logs each request's headers at INFO: keep the task log readable.
    logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)
    connection = os.environ.get(BLOB_ENV)
    if not connection:
        raise RuntimeError(f"{BLOB_ENV} is not set for the Airflow worker: cannot read {path}")
    container, _, name = path.partition("/")
    blob = BlobServiceClient.from_connection_string(connection).get_blob_client(container, name)
    return json.loads(blob.download_blob().readall())


def better_model(metrics: Mapping[str, Mapping[str, float]]) -> str:
    """The model with the lowest test RMSE; on a tie, the first by name (deterministic)."""
    return min(sorted(metrics), key=lambda name: metrics[name]["rmse"])


@task.branch(task_id="compare")
def compare(data: str) -> str:
    """Pick the deploy task of the better model, from the metrics blobs of both train steps."""
    metrics = {name: read_blob_json(f"{data}/model_{name}/metrics.json") for name in MODELS}
    winner = better_model(metrics)
    line = {"step": "compare", "winner": winner}
    line.update({f"rmse_{name}": m["rmse"] for name, m in metrics.items()})
    print(json.dumps(line, sort_keys=True))
    return f"deploy_model_{winner}"


with DAG(
    dag_id=DAG_ID,
    description="train two models on the virtual node, deploy the better one",
    schedule="@daily",
    start_date=pendulum.datetime(2021, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    max_active_tasks=4,
    default_args={
        "retries": 1,
        "retry_delay": timedelta(seconds=30),
        "execution_timeout": timedelta(minutes=30),
    },
    tags=["sample", "virtual-node"],
):
    extract = step("extract", "extract", "raw/measurements.jsonl", "dataset.json")
    features = step("features", "features", "dataset.json", "features.json")
    train = [
        step(f"train_model_{m}", "train", "features.json", f"model_{m}/", "--model", m)
        for m in MODELS
    ]
    chosen = compare(data=DATA)
    deploy = [step(f"deploy_model_{m}", "deploy", f"model_{m}/", "deployment.json") for m in MODELS]

    extract >> features >> train >> chosen >> deploy
