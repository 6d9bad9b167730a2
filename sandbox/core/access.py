"""Least privilege for Airflow in the cluster: a task namespace, a ServiceAccount that may only
run pods there, and a kubeconfig for that account which the Airflow containers mount.

Role verbs are what KubernetesPodOperator (cncf-kubernetes 10.x, sync and deferrable) calls:
- pods: create (launch), get (poll phase; the trigger polls too), list (find the pod again on a
  retry/reattach by labels), watch (the client's Watch helpers), patch (label a pod "already
  checked"), delete (on_finish_action / on_kill);
- pods/log: get (stream logs; the log subresource has no list);
- pods/exec: create and get (xcom sidecar read and kill; the python client execs over a
  WebSocket GET, which newer API servers also authorise as create);
- events: get, list, watch (pod events on startup failures and while waiting to start).
Nothing cluster-scoped: no nodes, no other namespaces.

The token is a long-lived service-account-token Secret rather than a TokenRequest: it lives in
etcd, so it survives `down`/`up` and a laptop reboot (Airflow containers restarted by Docker keep
a working kubeconfig without `sandbox up` running), and it is gone with the cluster on `--purge`.
A TokenRequest token would expire under a running Airflow.
"""

from __future__ import annotations

from typing import Any, Protocol

import yaml

from sandbox.config import Settings
from sandbox.errors import ClusterError, WaitTimeout
from sandbox.progress import Reporter
from sandbox.state import StateDir, write_private
from sandbox.waiting import NotReady, wait_until

MANAGED_BY = {"app.kubernetes.io/managed-by": "sandbox"}
API_SERVER_PORT = 6443
TOKEN_WAIT_S = 60.0

ROLE_RULES: list[dict[str, Any]] = [
    {
        "apiGroups": [""],
        "resources": ["pods"],
        "verbs": ["create", "get", "list", "watch", "patch", "delete"],
    },
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]},
]


class AccessApi(Protocol):
    def apply(self, manifest: Any) -> None: ...
    def service_account_token(self, namespace: str, secret_name: str) -> str | None: ...
    def server_ca_data(self) -> str: ...


def token_secret_name(settings: Settings) -> str:
    return f"{settings.service_account}-token"


def internal_server(settings: Settings) -> str:
    """The API server as containers on the `kind` network reach it (never 127.0.0.1)."""
    return f"https://{settings.control_plane_host}:{API_SERVER_PORT}"


def access_manifests(settings: Settings) -> list[dict[str, Any]]:
    """Namespace, ServiceAccount, Role, RoleBinding and the account's token Secret, in apply
    order; then the Spark samples' accounts (sandbox.core.spark_access)."""
    from sandbox.core.spark_access import spark_access_manifests

    ns, sa = settings.task_namespace, settings.service_account

    def meta(name: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, "namespace": ns, "labels": dict(MANAGED_BY), **extra}

    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": dict(MANAGED_BY)}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(sa)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta(f"{sa}-pod-launcher"),
            "rules": ROLE_RULES,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta(f"{sa}-pod-launcher"),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": f"{sa}-pod-launcher",
            },
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}],
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/service-account-token",
            "metadata": meta(
                token_secret_name(settings), annotations={"kubernetes.io/service-account.name": sa}
            ),
        },
        *spark_access_manifests(settings),
    ]


def airflow_kubeconfig(*, cluster: str, server: str, ca_data: str, token: str, namespace: str) -> str:
    """A kubeconfig for the service account: token auth, the internal server address."""
    user = "airflow"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": cluster, "cluster": {"server": server, "certificate-authority-data": ca_data}}
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {"name": cluster, "context": {"cluster": cluster, "user": user, "namespace": namespace}}
        ],
        "current-context": cluster,
        "preferences": {},
    }
    return yaml.safe_dump(config, sort_keys=False)


def ensure_cluster_access(
    settings: Settings,
    kube: AccessApi,
    state: StateDir,
    reporter: Reporter,
    *,
    token_timeout: float = TOKEN_WAIT_S,
) -> None:
    """Apply the manifests (server-side apply: idempotent), then write .sandbox/kubeconfig-airflow."""
    manifests = access_manifests(settings)
    with reporter.step(f"grant Airflow access to namespace {settings.task_namespace}"):
        for manifest in manifests:
            kube.apply(manifest)
        token = _wait_for_token(settings, kube, token_timeout)
        text = airflow_kubeconfig(
            cluster=settings.cluster_name,
            server=internal_server(settings),
            ca_data=kube.server_ca_data(),
            token=token,
            namespace=settings.task_namespace,
        )
        path = state.airflow_kubeconfig
        if not path.exists() or path.read_text() != text:
            write_private(path, text)
            reporter.info(
                f"wrote {path} (service account {settings.service_account}, {internal_server(settings)})"
            )


def _wait_for_token(settings: Settings, kube: AccessApi, timeout: float) -> str:
    secret = token_secret_name(settings)

    def token() -> str:
        value = kube.service_account_token(settings.task_namespace, secret)
        if not value:
            raise NotReady(f"Secret {settings.task_namespace}/{secret} has no token yet")
        return value

    try:
        return wait_until(
            token,
            what=f"the token of service account {settings.service_account}",
            timeout=timeout,
            interval=0.2,
        )
    except WaitTimeout as exc:
        raise ClusterError(
            exc.message,
            hint="the cluster's token controller is not running; `kubectl --kubeconfig .sandbox/kubeconfig-admin "
            "get pods -n kube-system` shows why, or recreate with `sandbox down --purge && sandbox up`",
        ) from None
