"""kind-config.yaml: parse, validate, and predict the nodes `sandbox up` will produce.

The virtual node is a kind worker that carries the AKS virtual node's identity: the label
type=virtual-kubelet (kind config), the taint virtual-kubelet.io/provider=azure:NoSchedule
(kubeadm JoinConfiguration, so it exists from registration on), and the labels kubelet refuses to
set on itself, applied through the API by `sandbox up` (POST_CREATE_LABELS).
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sandbox.config import Settings
from sandbox.errors import ConfigError
from sandbox.models import Taint


@dataclass(frozen=True)
class NodeSpec:
    """A node as it exists after `sandbox up` (name, labels and taints as the API shows them)."""

    name: str
    role: str  # "control-plane" | "worker"
    labels: Mapping[str, str]
    taints: tuple[Taint, ...]
    is_virtual_node: bool


# What AKS's virtual node (virtual-kubelet, azure-aci provider) carries and what the AKS docs'
# nodeSelector for it names: type, kubernetes.io/role, (beta.)kubernetes.io/os.
VIRTUAL_NODE_LABELS: dict[str, str] = {
    "type": "virtual-kubelet",
    "kubernetes.io/role": "agent",
    "kubernetes.io/os": "linux",
    "beta.kubernetes.io/os": "linux",
}
VIRTUAL_NODE_TAINT = Taint("virtual-kubelet.io/provider", "azure", "NoSchedule")

# Applied by `up` through the API: kubelet refuses kubernetes.io/role (kind then hangs at "Joining
# worker nodes") and the alpha service-controller label. The two load-balancer exclusions are what
# virtual-kubelet sets on its node; they keep Service load balancers off it as on AKS.
POST_CREATE_LABELS: dict[str, str] = {
    "kubernetes.io/role": "agent",
    "alpha.service-controller.kubernetes.io/exclude-balancer": "true",
    "node.kubernetes.io/exclude-from-external-load-balancers": "true",
}

CONTROL_PLANE_TAINT = Taint("node-role.kubernetes.io/control-plane", "", "NoSchedule")
KIND_API_VERSION = "kind.x-k8s.io/v1alpha4"
ROLES = ("control-plane", "worker")

# Labels kubelet accepts for itself in the kubernetes.io / k8s.io namespaces (NodeRestriction).
_KUBELET_ALLOWED_LABELS = frozenset(
    {
        "kubernetes.io/hostname",
        "kubernetes.io/arch",
        "kubernetes.io/os",
        "beta.kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "failure-domain.beta.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "topology.kubernetes.io/zone",
    }
)
_KUBELET_ALLOWED_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")


def kubelet_refuses(label: str) -> bool:
    """True for a label kubelet will not set on its own node (`--node-labels`)."""
    if "/" not in label or label in _KUBELET_ALLOWED_LABELS:
        return False
    prefix = label.split("/", 1)[0]
    if any(prefix == ns or prefix.endswith("." + ns) for ns in _KUBELET_ALLOWED_NAMESPACES):
        return False
    return any(prefix == d or prefix.endswith("." + d) for d in ("kubernetes.io", "k8s.io"))


@dataclass(frozen=True)
class KindNode:
    role: str
    image: str | None
    labels: Mapping[str, str]
    join_taints: tuple[Taint, ...]  # from JoinConfiguration nodeRegistration.taints

    @property
    def is_virtual_node(self) -> bool:
        return self.role == "worker" and self.labels.get("type") == VIRTUAL_NODE_LABELS["type"]


@dataclass(frozen=True)
class KindClusterConfig:
    path: Path
    nodes: tuple[KindNode, ...]


_FIX = "fix kind-config.yaml (see the comments in the file), or restore it with `git checkout kind-config.yaml`"


def load_kind_config(path: Path) -> KindClusterConfig:
    """Parse and validate; every problem is a ConfigError naming the file and how to fix it."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(
            f"{path} does not exist",
            hint="restore kind-config.yaml (`git checkout kind-config.yaml`) or set kind_config in sandbox.toml",
        ) from None
    return parse_kind_config(text, path)


def parse_kind_config(text: str, path: Path) -> KindClusterConfig:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {_one_line(exc)}", hint=_FIX) from None
    if (
        not isinstance(raw, dict)
        or raw.get("kind") != "Cluster"
        or raw.get("apiVersion") != KIND_API_VERSION
    ):
        raise ConfigError(
            f"{path} is not a kind cluster config (expected `kind: Cluster`, `apiVersion: {KIND_API_VERSION}`)",
            hint=_FIX,
        )
    raw_nodes = raw.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise ConfigError(f"{path} lists no nodes", hint=_FIX)
    nodes = tuple(_parse_node(path, i, n) for i, n in enumerate(raw_nodes))
    if not any(n.role == "control-plane" for n in nodes):
        raise ConfigError(f"{path} has no control-plane node", hint=_FIX)
    virtual = [n for n in nodes if n.is_virtual_node]
    if not virtual:
        raise ConfigError(
            f"{path} has no virtual node: no worker is labelled type=virtual-kubelet",
            hint="add a worker with `labels: {type: virtual-kubelet}` and the taint patch; " + _FIX,
        )
    for node in virtual:
        if VIRTUAL_NODE_TAINT not in node.join_taints:
            raise ConfigError(
                f"{path}: the virtual-node worker lacks the taint {VIRTUAL_NODE_TAINT} in a "
                "JoinConfiguration kubeadmConfigPatch (nodeRegistration.taints)",
                hint="without it every pod could land on the virtual node; " + _FIX,
            )
    return KindClusterConfig(path=path, nodes=nodes)


def _parse_node(path: Path, index: int, raw: Any) -> KindNode:
    where = f"{path}: nodes[{index}]"
    if not isinstance(raw, dict) or raw.get("role") not in ROLES:
        raise ConfigError(f"{where} needs `role: control-plane` or `role: worker`", hint=_FIX)
    labels = raw.get("labels") or {}
    if not isinstance(labels, dict):
        raise ConfigError(f"{where}: `labels` must be a mapping", hint=_FIX)
    labels = {str(k): str(v) for k, v in labels.items()}
    refused = sorted(k for k in labels if kubelet_refuses(k))
    if refused:
        raise ConfigError(
            f"{where} sets label(s) kubelet refuses: {', '.join(refused)} (kind would hang at "
            "'Joining worker nodes')",
            hint="remove them from kind-config.yaml; `sandbox up` applies kubernetes.io/role through the API",
        )
    patches = raw.get("kubeadmConfigPatches") or []
    if not isinstance(patches, list):
        raise ConfigError(f"{where}: `kubeadmConfigPatches` must be a list of YAML strings", hint=_FIX)
    taints: list[Taint] = []
    for patch in patches:
        taints.extend(_join_taints(where, patch))
    image = raw.get("image")
    return KindNode(
        role=raw["role"], image=str(image) if image else None, labels=labels, join_taints=tuple(taints)
    )


def _join_taints(where: str, patch: Any) -> list[Taint]:
    try:
        doc = yaml.safe_load(patch) if isinstance(patch, str) else patch
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"{where}: a kubeadmConfigPatch is not valid YAML: {_one_line(exc)}", hint=_FIX
        ) from None
    if not isinstance(doc, dict) or doc.get("kind") != "JoinConfiguration":
        return []
    raw_taints = (doc.get("nodeRegistration") or {}).get("taints") or []
    taints = []
    for t in raw_taints:
        if not isinstance(t, dict) or "key" not in t or "effect" not in t:
            raise ConfigError(f"{where}: every taint needs `key` and `effect`", hint=_FIX)
        taints.append(Taint(str(t["key"]), str(t.get("value", "")), str(t["effect"])))
    return taints


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def node_names(cluster: str, roles: list[str]) -> list[str]:
    """kind's naming: per role, in config order: <c>-control-plane, <c>-control-plane2, <c>-worker, <c>-worker2…"""
    counters: dict[str, int] = {}
    names = []
    for role in roles:
        counters[role] = counters.get(role, 0) + 1
        n = counters[role]
        names.append(f"{cluster}-{role}" + ("" if n == 1 else str(n)))
    return names


def host_arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        machine, machine
    )


def declared_nodes(settings: Settings, config: KindClusterConfig | None = None) -> list[NodeSpec]:
    """The nodes as they will exist after `sandbox up` (kind's names, kubelet's default labels)."""
    config = config or load_kind_config(settings.kind_config)
    arch = host_arch()
    names = node_names(settings.cluster_name, [n.role for n in config.nodes])
    specs = []
    for name, node in zip(names, config.nodes, strict=True):
        labels = {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": arch,
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": arch,
            **node.labels,
        }
        taints = list(node.join_taints)
        if node.role == "control-plane":
            labels["node-role.kubernetes.io/control-plane"] = ""
            labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
            taints.insert(0, CONTROL_PLANE_TAINT)
        if node.is_virtual_node:
            labels.update(VIRTUAL_NODE_LABELS)
            labels.update(POST_CREATE_LABELS)
        specs.append(
            NodeSpec(
                name=name,
                role=node.role,
                labels=labels,
                taints=tuple(taints),
                is_virtual_node=node.is_virtual_node,
            )
        )
    return specs
