"""Helpers for DAG files, importable inside Airflow's containers (stdlib, Airflow, kubernetes).

`task_image(name)` resolves an image built from `images/<name>/` (sandbox or production);
`virtual_node()` gives the KubernetesPodOperator arguments that put a task on the AKS virtual node.
`sandbox_tasks.spark` has the Spark-on-Kubernetes pieces (submit task, pod templates, driver sensor).
"""

from sandbox_tasks.images import task_image
from sandbox_tasks.pods import BLOB_CONTAINER, BLOB_ENV, virtual_node

__all__ = ["BLOB_CONTAINER", "BLOB_ENV", "task_image", "virtual_node"]
