"""The virtual node's capacity: the ACI quota of the subscription, simulated with ResourceQuotas.

What AKS does when the quota is used up: virtual-kubelet's pod controller calls the ACI
provider's CreatePod; ACI refuses the container group (quota exceeded) and virtual-kubelet marks
the pod phase Failed (Pending if its restartPolicy is not Never), reason ProviderFailed, message
the ACI error (virtual-kubelet node/pod.go, handleProviderError). KubernetesPodOperator pods
have restartPolicy Never, so the task fails at once with that message; Airflow's retries are
the only second chance. Nothing waits for capacity.

Why a ResourceQuota and not node allocatable (kubelet maxPods/systemReserved on the virtual
worker): over allocatable, kube-scheduler keeps the pod Pending (Unschedulable) and the task
fails only when KubernetesPodOperator's startup_timeout_seconds (120 s) runs out: a wait AKS
does not have. A quota makes the API server refuse the pod at creation (403 "exceeded quota"),
which KubernetesPodOperator does not retry (cncf-kubernetes retries 409/429/5xx only), so the
task fails at once naming the quota, as on AKS. A quota is also independent of the laptop's
cores, which node allocatable is not.

Two quotas, because ACI has two per region and subscription (container groups and standard
cores; learn.microsoft.com/azure/container-instances/container-instances-resource-and-quota-limits):
- `sandbox-aci-container-groups`: every pod (one pod is one container group);
- `sandbox-aci-cores`: CPU (and memory, if budgeted) requests of pods that declare any
  (scope NotBestEffort). A pod without requests is not refused for lacking them, as a quota on
  requests otherwise would; ACI would count it as 1 vCPU, and `sandbox lint` warns about it
  (rule resource-requests).
Limits of the simulation: a quota counts every pod of the task namespace, also pods meant for
the ordinary node pool (a quota cannot select pods by node), and it is enforced at pod creation
by the API server rather than by the node.
"""

from __future__ import annotations

from typing import Any

from sandbox.config import Settings
from sandbox.core.access import MANAGED_BY

CONTAINER_GROUPS_QUOTA = "sandbox-aci-container-groups"
CORES_QUOTA = "sandbox-aci-cores"


def _quantity(value: float) -> str:
    """A Kubernetes quantity: whole numbers as such, else millicores / mebibytes."""
    return str(int(value)) if float(value).is_integer() else f"{round(value * 1000)}m"


def quota_manifests(settings: Settings) -> list[dict[str, Any]]:
    """The ResourceQuotas standing for the ACI quota, in the task namespace."""
    quota = settings.virtual_node_quota

    def manifest(name: str, hard: dict[str, str], spec: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": name, "namespace": settings.task_namespace, "labels": dict(MANAGED_BY)},
            "spec": {"hard": hard, **(spec or {})},
        }

    cores = {"requests.cpu": _quantity(quota.cpu)}
    if quota.memory_gib is not None:
        cores["requests.memory"] = (
            f"{int(quota.memory_gib)}Gi" if float(quota.memory_gib).is_integer() else f"{round(quota.memory_gib * 1024)}Mi"
        )
    return [
        manifest(CONTAINER_GROUPS_QUOTA, {"pods": str(quota.pods)}),
        manifest(
            CORES_QUOTA,
            cores,
            {"scopeSelector": {"matchExpressions": [{"scopeName": "NotBestEffort", "operator": "Exists"}]}},
        ),
    ]


def describe(settings: Settings) -> str:
    """One line for `status`: the budget the virtual node admits."""
    quota = settings.virtual_node_quota
    memory = f", {quota.memory_gib:g} GiB" if quota.memory_gib is not None else ""
    return f"{quota.pods} pods, {quota.cpu:g} CPU{memory} (ACI quota; [virtual_node_quota] in sandbox.toml)"
