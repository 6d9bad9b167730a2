"""Least privilege for Spark on Kubernetes in the task namespace: two service accounts.

- `spark-submit`: the submit pod's account. spark-submit in cluster mode (Spark 4.x
  KubernetesClientApplication / Client.run) creates the driver pod, then the driver's ConfigMap
  and Service with server-side apply (PATCH; creating through apply also needs create), and
  deletes what it made when a step fails. Spark's development line also removes a scheduling gate
  from the driver with an edit (get + patch, SPARK-38079), hence get and patch on pods. With
  spark.kubernetes.submission.waitAppCompletion=false it does not watch the driver.
- `spark-driver`: the driver's account (spark.kubernetes.authenticate.driver.serviceAccountName;
  executors fall back to it). Spark's docs (running-on-kubernetes.md, "RBAC") ask for pods and
  services; the code (KubernetesClusterSchedulerBackend, ExecutorPodsAllocator,
  ExecutorPodsWatchSnapshotSource / PollingSnapshotSource, ExecutorPodsLifecycleManager) creates,
  gets, lists, watches, labels (patch) and deletes executor pods, one by one and by label
  (deletecollection); creates the executors' ConfigMap and deletes it by label; deletes the
  driver's Service by label on stop.
- No persistentvolumeclaims: the sample mounts none (AKS virtual nodes v1 refuse PVC volumes) and
  sets spark.kubernetes.driver.ownPersistentVolumeClaim=false so the driver makes no PVC calls.
Nothing cluster-scoped, nothing outside the task namespace, no secrets: the blob connection
string reaches the driver as a secretKeyRef env var, which the kubelet resolves.
"""

from __future__ import annotations

from typing import Any

from sandbox.config import Settings

# The same names as sample_dags/sandbox_tasks/spark.py (a unit test keeps them equal).
SUBMIT_SERVICE_ACCOUNT = "spark-submit"
DRIVER_SERVICE_ACCOUNT = "spark-driver"
MANAGED_BY = {"app.kubernetes.io/managed-by": "sandbox"}

SUBMIT_RULES: list[dict[str, Any]] = [
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "get", "patch", "delete"]},
    {
        "apiGroups": [""],
        "resources": ["configmaps", "services"],
        "verbs": ["create", "patch", "delete"],
    },
]

DRIVER_RULES: list[dict[str, Any]] = [
    {
        "apiGroups": [""],
        "resources": ["pods"],
        "verbs": ["create", "get", "list", "watch", "patch", "delete", "deletecollection"],
    },
    {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "verbs": ["create", "delete", "deletecollection"],
    },
    {"apiGroups": [""], "resources": ["services"], "verbs": ["delete", "deletecollection"]},
]


def spark_access_manifests(settings: Settings) -> list[dict[str, Any]]:
    """ServiceAccount, Role and RoleBinding for each account, in apply order (after the namespace)."""
    ns = settings.task_namespace
    manifests: list[dict[str, Any]] = []
    for account, rules in ((SUBMIT_SERVICE_ACCOUNT, SUBMIT_RULES), (DRIVER_SERVICE_ACCOUNT, DRIVER_RULES)):
        meta = {"name": account, "namespace": ns, "labels": dict(MANAGED_BY)}
        manifests += [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": dict(meta)},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": dict(meta), "rules": rules},
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": dict(meta),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
                "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns}],
            },
        ]
    return manifests
