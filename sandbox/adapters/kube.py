"""The Kubernetes API: the only module that imports `kubernetes`. Answers become dataclasses.

Requests go through the client's ApiClient with raw JSON in and out (no generated models), so the
parsers below read exactly what the API server sends and are tested against fixtures of that
format. Manifests are applied with server-side apply (field manager "sandbox"): one PATCH creates
or updates, so re-running `up` is safe.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from sandbox.errors import ClusterError, KubeApiError
from sandbox.models import Node, Taint

log = logging.getLogger("sandbox.http")  # printed with -v, like every external command

FIELD_MANAGER = "sandbox"
REQUEST_TIMEOUT_S = 30
UNREACHABLE_HINT = "is the cluster running? `sandbox status` shows it; `sandbox up` starts it"


@dataclass(frozen=True)
class Resource:
    plural: str
    namespaced: bool


# What `apply`/`get` accept, keyed by (apiVersion, kind): a small map instead of discovery.
RESOURCES: dict[tuple[str, str], Resource] = {
    ("v1", "Namespace"): Resource("namespaces", False),
    ("v1", "ServiceAccount"): Resource("serviceaccounts", True),
    ("v1", "Secret"): Resource("secrets", True),
    ("v1", "ConfigMap"): Resource("configmaps", True),
    ("v1", "Pod"): Resource("pods", True),
    ("v1", "LimitRange"): Resource("limitranges", True),
    ("v1", "ResourceQuota"): Resource("resourcequotas", True),
    ("rbac.authorization.k8s.io/v1", "Role"): Resource("roles", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): Resource("rolebindings", True),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): Resource("clusterroles", False),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): Resource("clusterrolebindings", False),
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy"): Resource(
        "validatingadmissionpolicies", False
    ),
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding"): Resource(
        "validatingadmissionpolicybindings", False
    ),
}


def describe(manifest: Mapping[str, Any]) -> str:
    """`Kind namespace/name` for messages and request records."""
    meta = manifest.get("metadata") or {}
    ns = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{manifest.get('kind')} {ns}{meta.get('name')}"


def resource_path(manifest: Mapping[str, Any]) -> str:
    """The REST path of the object a manifest names, e.g. /api/v1/namespaces/x/secrets/y."""
    api_version, kind = manifest.get("apiVersion", ""), manifest.get("kind", "")
    resource = RESOURCES.get((api_version, kind))
    if resource is None:
        raise ClusterError(
            f"cannot apply {kind} ({api_version}): not a kind the sandbox manages",
            hint="add it to RESOURCES in sandbox/adapters/kube.py",
        )
    meta = manifest.get("metadata") or {}
    name, namespace = meta.get("name"), meta.get("namespace")
    if not name or (resource.namespaced and not namespace):
        raise ClusterError(
            f"{describe(manifest)}: metadata.name{' and metadata.namespace' if resource.namespaced else ''} required",
            hint="this is a bug in the manifest builder; please report it",
        )
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    if resource.namespaced:
        base += f"/namespaces/{quote(namespace)}"
    return f"{base}/{resource.plural}/{quote(name)}"


def parse_node(obj: Mapping[str, Any]) -> Node:
    meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status", {})
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    return Node(
        name=meta["name"],
        labels=dict(meta.get("labels") or {}),
        taints=tuple(Taint(t["key"], t.get("value", ""), t["effect"]) for t in spec.get("taints") or []),
        ready=conditions.get("Ready") == "True",
        unschedulable=bool(spec.get("unschedulable", False)),
        kubelet_version=(status.get("nodeInfo") or {}).get("kubeletVersion", ""),
        pods_capacity=_count((status.get("capacity") or {}).get("pods")),
    )


def _count(quantity: Any) -> int | None:
    """A count-type Quantity as the API server writes it for pods ("110"); None if absent."""
    try:
        return int(quantity)
    except (TypeError, ValueError):
        return None


def secret_token(obj: Mapping[str, Any]) -> str | None:
    """The token the token controller put into a service-account-token Secret (None: not yet)."""
    encoded = (obj.get("data") or {}).get("token")
    return base64.b64decode(encoded).decode() if encoded else None


def kubeconfig_ca_data(text: str) -> str:
    """certificate-authority-data of the current context's cluster (base64, as in the file)."""
    try:
        config = yaml.safe_load(text) or {}
        context_name = config["current-context"]
        context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        return cluster["certificate-authority-data"]
    except (yaml.YAMLError, KeyError, StopIteration, TypeError) as exc:
        raise ClusterError(
            f"the admin kubeconfig has no certificate-authority-data for its current context ({exc})",
            hint="run `sandbox up` again to rewrite it from kind",
        ) from None


@dataclass
class KubeApi:
    """A client for one cluster, built from a kubeconfig file (the admin one in .sandbox/)."""

    api_client: Any
    ca_data: str
    server: str

    @classmethod
    def from_kubeconfig(cls, path: Path) -> KubeApi:
        from kubernetes import client, config

        try:
            text = path.read_text()
        except FileNotFoundError:
            raise ClusterError(
                f"no kubeconfig at {path}", hint="run `sandbox up` to create the cluster"
            ) from None
        configuration = client.Configuration()
        try:
            config.load_kube_config(config_file=str(path), client_configuration=configuration)
        except Exception as exc:  # the loader raises ConfigException, ValueError, yaml errors…
            raise ClusterError(
                f"cannot load kubeconfig {path}: {exc}", hint="run `sandbox up` to rewrite it"
            ) from None
        configuration.retries = 1
        return cls(client.ApiClient(configuration), kubeconfig_ca_data(text), configuration.host)

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        log.debug("kube: %s %s%s", method, self.server, path)
        try:
            response = self.api_client.call_api(
                path,
                method,
                query_params=query or [],
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT_S,
            )
        except ApiException as exc:
            raise KubeApiError(
                exc.status,
                f"Kubernetes API: {method} {path} returned {exc.status}: {_status_message(exc.body) or exc.reason}",
                hint=_hint_for(exc.status),
            ) from None
        except HTTPError as exc:
            raise ClusterError(
                f"cannot reach the Kubernetes API at {self.server}: {type(exc).__name__}",
                hint=UNREACHABLE_HINT,
            ) from None
        data = response[0].data if isinstance(response, tuple) else response.data
        return json.loads(data) if data else {}

    def nodes(self) -> list[Node]:
        return [parse_node(item) for item in self._call("GET", "/api/v1/nodes").get("items", [])]

    def label_node(self, name: str, labels: Mapping[str, str | None]) -> None:
        """Set labels; a None value removes that label (JSON merge patch, RFC 7386)."""
        self._call(
            "PATCH",
            f"/api/v1/nodes/{quote(name)}",
            body={"metadata": {"labels": dict(labels)}},
            content_type="application/merge-patch+json",
        )

    def apply(self, manifest: Mapping[str, Any]) -> None:
        self._call(
            "PATCH",
            resource_path(manifest),
            body=dict(manifest),
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )

    def get(self, manifest: Mapping[str, Any]) -> dict[str, Any] | None:
        """The live object a manifest names, or None when it does not exist."""
        try:
            return self._call("GET", resource_path(manifest))
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise

    def service_account_token(self, namespace: str, secret_name: str) -> str | None:
        secret = self.get(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": secret_name, "namespace": namespace},
            }
        )
        return secret_token(secret) if secret else None

    def server_ca_data(self) -> str:
        return self.ca_data


def _status_message(body: Any) -> str:
    try:
        return json.loads(body).get("message", "")
    except (TypeError, ValueError, AttributeError):
        return ""


def _hint_for(status: int) -> str:
    if status in (401, 403):
        return (
            "the admin kubeconfig in .sandbox/ is stale or lacks rights; run `sandbox up` to rewrite it"
        )
    if status == 404:
        return "the object does not exist; `sandbox status` shows the cluster's state"
    return "`sandbox status` shows the cluster's state; `sandbox up` repairs it"
