"""Example DAG: one pod task on the AKS virtual node, running the `example` task image.

`task_image("example")` is the image built from images/example/ (its content tag in the
sandbox; in production TASK_IMAGE_REGISTRY/TASK_IMAGE_TAG or the Airflow Variables
task_image_registry/task_image_tag, read when the task runs). `virtual_node()` gives placement,
resources and the settings the virtual node (Azure Container Instances) needs.
"""

from __future__ import annotations

import pendulum
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG
from sandbox_tasks import task_image, virtual_node

with DAG(
    dag_id="example",
    schedule="@daily",
    start_date=pendulum.datetime(2021, 11, 1, tz="UTC"),
    catchup=False,
    tags=["example", "virtual-node"],
):
    KubernetesPodOperator(
        task_id="metrics",
        image=task_image("example"),
        cmds=["python", "/app/metrics_step.py"],
        arguments=["--date", "{{ ds }}"],
        **virtual_node(),
    )
