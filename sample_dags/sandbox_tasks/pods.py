"""The one place that says how a KubernetesPodOperator task runs on the AKS virtual node.

`virtual_node()` returns the operator keyword arguments shared by every pod task of the sample
DAGs, so placement and the ACI rules are right in one place instead of in every task:
- nodeSelector and tolerations exactly as the documentation of the virtual node in use gives
  them: AKS virtual nodes (v1) or virtual nodes v2, chosen by SANDBOX_PROFILE (the sandbox's
  simulated node carries the same labels and taint, so the same DAG places the same);
- requests and limits set (without requests ACI silently gives 1 vCPU / 1.5 GB), within ACI's
  4 vCPU / 16 GiB per container group;
- `do_xcom_push=False`: KPO's XCom sidecar is read with an exec that passes arguments, which
  ACI (virtual nodes v1) cannot run; steps exchange data through blob storage instead;
- the blob connection string from the Secret `sandbox up` creates (on AKS: a Secret of the same
  name holding the real storage account's connection string);
- `callbacks=[MetricsCapture]`: the metrics line and the lineage record, read from the pod's
  log in the worker (sandbox_tasks/lineage.py);
- the pull policy from `task_image_pull_policy()`: `IfNotPresent` in the sandbox (images are
  loaded into the kind nodes, there is no registry), Kubernetes' default in production.

Only stdlib and the kubernetes models: the DAG folder is all a DAG file can import in Airflow's
containers (the `sandbox` package is not installed there).
"""

from __future__ import annotations

import os
from typing import Any

from kubernetes.client import models as k8s

from sandbox_tasks.images import task_image_pull_policy
from sandbox_tasks.lineage import MetricsCapture

# The blob contract, as sandbox.core.blob defines it (a unit test keeps the two equal).
BLOB_CONTAINER = "sandbox"
BLOB_SECRET_NAME = "sandbox-blob"
BLOB_SECRET_KEY = "connection_string"
BLOB_ENV = "AZURE_STORAGE_CONNECTION_STRING"

# Where pods go: `sandbox up` sets SANDBOX_TASK_NAMESPACE for every Airflow process.
TASK_NAMESPACE = os.environ.get("SANDBOX_TASK_NAMESPACE", "sandbox-tasks")
# Finished pods are kept in the sandbox so `kubectl logs/describe` (and the e2e) can see where
# and how they ran; on AKS set SANDBOX_POD_ON_FINISH=delete_succeeded_pod.
ON_FINISH_ACTION = os.environ.get("SANDBOX_POD_ON_FINISH", "keep_pod")
# `sandbox up --stack-only` runs Airflow without a cluster and sets SANDBOX_CLUSTER=none.
NO_CLUSTER = os.environ.get("SANDBOX_CLUSTER") == "none"

# Which AKS virtual node the pods go to: `sandbox up` sets SANDBOX_PROFILE (the sandbox's
# `profile` setting) for every Airflow process. On AKS, set it in Airflow's environment to the
# kind of virtual node the cluster runs; unset means aci-v1, the sandbox's default.
PROFILE_ENV = "SANDBOX_PROFILE"
DEFAULT_PROFILE = "aci-v1"
# profile -> (nodeSelector, tolerations), as each one's documentation gives them.
PLACEMENT: dict[str, tuple[dict[str, str], tuple[dict[str, str], ...]]] = {
    # AKS virtual nodes: the docs' sample app (learn.microsoft.com/azure/aks/virtual-nodes-cli)
    # and Azure's AKS autoscaling workshop ("Pod Spec for ACI Deployment, only on ACI").
    "aci-v1": (
        {"kubernetes.io/role": "agent", "beta.kubernetes.io/os": "linux", "type": "virtual-kubelet"},
        (
            {"key": "virtual-kubelet.io/provider", "operator": "Exists"},
            {"key": "azure.com/aci", "effect": "NoSchedule"},
        ),
    ),
    # Virtual nodes v2: microsoft/virtualnodesOnAzureContainerInstances, README and
    # Docs/NodeCustomizations.md.
    "aci-v2": (
        {"virtualization": "virtualnode2"},
        ({"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"},),
    ),
}


def placement() -> tuple[dict[str, str], list[k8s.V1Toleration]]:
    """nodeSelector and tolerations for the profile in SANDBOX_PROFILE (read when a DAG file is
    parsed, so `sandbox lint --profile` and a changed setting take effect without a restart)."""
    profile = os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE
    if profile not in PLACEMENT:
        raise ValueError(
            f"{PROFILE_ENV}={profile!r} names no kind of AKS virtual node: set it to "
            f"{' or '.join(PLACEMENT)} (aci-v1: AKS virtual nodes, aci-v2: virtual nodes v2)"
        )
    selector, tolerations = PLACEMENT[profile]
    return dict(selector), [k8s.V1Toleration(**t) for t in tolerations]


def refuse_without_cluster(context: Any) -> None:
    """pre_execute hook in stack-only mode: fail at once, without retries, saying why."""
    from airflow.sdk.exceptions import AirflowFailException

    raise AirflowFailException(
        "this sandbox runs without a Kubernetes cluster (`sandbox up --stack-only`), so pod "
        "tasks cannot run; run `sandbox up` for the full sandbox with the simulated virtual node"
    )


def blob_env() -> list[k8s.V1EnvVar]:
    """AZURE_STORAGE_CONNECTION_STRING from the blob Secret (ACI accepts secretKeyRef env)."""
    return [
        k8s.V1EnvVar(
            name=BLOB_ENV,
            value_from=k8s.V1EnvVarSource(
                secret_key_ref=k8s.V1SecretKeySelector(name=BLOB_SECRET_NAME, key=BLOB_SECRET_KEY)
            ),
        )
    ]


def virtual_node(
    *,
    cpu: str = "500m",
    memory: str = "512Mi",
    cpu_limit: str = "1",
    memory_limit: str = "1Gi",
    namespace: str = TASK_NAMESPACE,
) -> dict[str, Any]:
    """KubernetesPodOperator keyword arguments that put a task on the AKS virtual node of the
    profile in SANDBOX_PROFILE.

    Give the task its own `task_id`, `image` (from `task_image()`), `cmds` and `arguments`
    (always `cmds` with `arguments`: the ACI provider refuses args without a command).
    """
    node_selector, tolerations = placement()
    kwargs: dict[str, Any] = {
        "namespace": namespace,
        "node_selector": node_selector,
        "tolerations": tolerations,
        "container_resources": k8s.V1ResourceRequirements(
            requests={"cpu": cpu, "memory": memory},
            limits={"cpu": cpu_limit, "memory": memory_limit},
        ),
        "env_vars": blob_env(),
        "image_pull_policy": task_image_pull_policy(),
        "do_xcom_push": False,
        "get_logs": True,  # MetricsCapture reads the metrics line from the followed log
        "callbacks": [MetricsCapture],
        "log_events_on_failure": True,
        "on_finish_action": ON_FINISH_ACTION,
        # ACI may need minutes to start a container group; kind needs seconds.
        "startup_timeout_seconds": 600,
        "labels": {"app.kubernetes.io/part-of": "sandbox-samples"},
    }
    if NO_CLUSTER:
        kwargs["pre_execute"] = refuse_without_cluster
    return kwargs
