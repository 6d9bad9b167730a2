"""Daily recommendations: preprocess -> inference -> postprocess, pods on the AKS virtual node.

Every step is a CLI in the `steps` task image (sample_dags/images/steps) and exchanges data
through blob storage under sandbox/recommend/<ds>/, so a run is idempotent per date. On a fresh
sandbox, preprocess seeds the day's raw interactions (synthetic, seeded by the date).

depends_on_past: off by default; RECOMMEND_DEPENDS_ON_PAST=true (in the Airflow environment)
makes each day wait for the previous day's success.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG
from sandbox_tasks import BLOB_CONTAINER, task_image, virtual_node

DAG_ID = "recommend"
DATA = f"{BLOB_CONTAINER}/{DAG_ID}/{{{{ ds }}}}"  # rendered per run: sandbox/recommend/2021-12-01
DEPENDS_ON_PAST = os.environ.get("RECOMMEND_DEPENDS_ON_PAST", "false").lower() in ("1", "true")


def step(name: str, source: str, target: str) -> KubernetesPodOperator:
    """One step's pod: `python -m steps.<name> --date <ds> --input <source> --output <target>`."""
    return KubernetesPodOperator(
        task_id=name,
        image=task_image("steps"),
        cmds=["python", "-m", f"steps.{name}"],
        arguments=[
            "--date", "{{ ds }}",
            "--input", f"{DATA}/{source}",
            "--output", f"{DATA}/{target}",
        ],
        **virtual_node(),
    )


with DAG(
    dag_id=DAG_ID,
    description="preprocess -> inference -> postprocess on the AKS virtual node",
    schedule="@daily",
    start_date=pendulum.datetime(2021, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=2,
    max_active_tasks=3,
    default_args={
        "depends_on_past": DEPENDS_ON_PAST,
        "retries": 1,
        "retry_delay": timedelta(seconds=30),
        "execution_timeout": timedelta(minutes=30),
    },
    tags=["sample", "virtual-node"],
):
    preprocess = step("preprocess", "raw/interactions.jsonl", "features.json")
    inference = step("inference", "features.json", "scores.json")
    postprocess = step("postprocess", "scores.json", "recommendations.csv")

    preprocess >> inference >> postprocess
