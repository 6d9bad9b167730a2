"""kind-config.yaml: parse, validate, render for the profile, and predict the nodes `sandbox up`
will produce.

The virtual node is a kind worker that carries the identity of the AKS virtual node of the
profile (VIRTUAL_NODE_KINDS): the label type=virtual-kubelet (kind-config.yaml marks the worker
with it), the taint virtual-kubelet.io/provider=azure:NoSchedule (kubeadm JoinConfiguration, so it
exists from registration on), the profile's own labels and pod capacity (added to the config kind
receives, `render_kind_config`), and the labels kubelet refuses to set on itself, applied through
the API by `sandbox up`.
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
    pods_capacity: int | None = None  # None: kubelet's default (not part of the profile)


# The taint both kinds of AKS virtual node carry. v1 (virtual-kubelet azure-aci) registers
# virtual-kubelet.io/provider=azure:NoSchedule (its node as seen in virtual-kubelet/azure-aci#90).
# For v2 the key and effect are what every pod in microsoft/virtualnodesOnAzureContainerInstances
# (README, Docs/NodeCustomizations.md, Docs/PodCustomizations.md) tolerates, always with
# operator Exists; its value is not documented, so the sandbox keeps v1's.
VIRTUAL_NODE_TAINT = Taint("virtual-kubelet.io/provider", "azure", "NoSchedule")
VIRTUAL_NODE_TYPE = ("type", "virtual-kubelet")  # marks the virtual-node worker in kind-config.yaml


@dataclass(frozen=True)
class VirtualNodeKind:
    """What the AKS virtual node of one profile looks like to the scheduler and to `kubectl`.

    `kind_labels` are set at registration (kind-config.yaml's `labels:` plus what
    `render_kind_config` adds, passed to kubelet's --node-labels); `api_labels` by `sandbox up`
    through the API (kubelet refuses kubernetes.io/role for itself, and may stop setting the
    deprecated beta OS label). `max_pods` is kubelet's --max-pods (None: kubelet's default, 110).
    """

    profile: str
    title: str
    kind_labels: Mapping[str, str]
    api_labels: Mapping[str, str]
    max_pods: int | None
    selector: Mapping[str, str]  # the nodeSelector its documentation gives pods

    @property
    def labels(self) -> dict[str, str]:
        return {**self.kind_labels, **self.api_labels}


_OS_LABELS = {"kubernetes.io/os": "linux", "beta.kubernetes.io/os": "linux"}
VIRTUAL_NODE_KINDS: dict[str, VirtualNodeKind] = {
    # AKS virtual nodes (the add-on: virtual-kubelet with the azure-aci provider). The AKS docs'
    # nodeSelector for it names type, kubernetes.io/role and beta.kubernetes.io/os; the two
    # load-balancer exclusions are what azure-aci's ConfigureNode sets on its node
    # (virtual-kubelet/azure-aci pkg/provider). Its pod capacity (azure-aci's default 5000, or
    # ACI_QUOTA_POD) is not simulated: the kind worker keeps kubelet's default.
    "aci-v1": VirtualNodeKind(
        profile="aci-v1",
        title="virtual node v1 (virtual-kubelet azure-aci)",
        kind_labels={VIRTUAL_NODE_TYPE[0]: VIRTUAL_NODE_TYPE[1]},
        api_labels={
            "kubernetes.io/role": "agent",
            **_OS_LABELS,
            "alpha.service-controller.kubernetes.io/exclude-balancer": "true",
            "node.kubernetes.io/exclude-from-external-load-balancers": "true",
        },
        max_pods=None,
        selector={"kubernetes.io/role": "agent", "beta.kubernetes.io/os": "linux", "type": "virtual-kubelet"},
    ),
    # Virtual nodes v2 (microsoft/virtualnodesOnAzureContainerInstances): pods select it with
    # virtualization=virtualnode2 (README, Docs/NodeCustomizations.md); Docs/PodCustomizations.md
    # selects type=virtual-kubelet and virtualization=virtualnode2 together, so it carries both;
    # `kubectl get nodes` in the README (Docs/Pictures/vn_k8s_nodeready.png) shows ROLES `agent`,
    # i.e. kubernetes.io/role=agent. "Each virtual node supports 200 pods" (README, Configuration
    # Considerations; Docs/NodeCustomizations.md: "can at most support 200 pods each").
    "aci-v2": VirtualNodeKind(
        profile="aci-v2",
        title="virtual node v2 (virtualnodesOnAzureContainerInstances)",
        kind_labels={VIRTUAL_NODE_TYPE[0]: VIRTUAL_NODE_TYPE[1], "virtualization": "virtualnode2"},
        api_labels={"kubernetes.io/role": "agent", **_OS_LABELS},
        max_pods=200,
        selector={"virtualization": "virtualnode2"},
    ),
}
# Every label some profile's virtual node carries beyond kubelet's own: the ones another
# profile's node lacks are removed when `up` relabels the node for a new profile.
PROFILE_LABEL_KEYS = frozenset(
    k for kind in VIRTUAL_NODE_KINDS.values() for k in kind.labels if k not in _OS_LABELS
)


def virtual_node_kind(profile: str) -> VirtualNodeKind:
    try:
        return VIRTUAL_NODE_KINDS[profile]
    except KeyError:
        raise ConfigError(
            f"unknown profile {profile!r}", hint=f"use one of: {', '.join(VIRTUAL_NODE_KINDS)}"
        ) from None


def kind_of_labels(labels: Mapping[str, str]) -> VirtualNodeKind | None:
    """The profile whose virtual node a live node's labels describe (None: neither fully)."""
    for kind in VIRTUAL_NODE_KINDS.values():
        own = kind.labels
        stray = PROFILE_LABEL_KEYS - own.keys()
        if all(labels.get(k) == v for k, v in own.items()) and not stray & labels.keys():
            return kind
    return None


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
        return self.role == "worker" and self.labels.get(VIRTUAL_NODE_TYPE[0]) == VIRTUAL_NODE_TYPE[1]


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
        owned = sorted(k for k in node.labels if k in PROFILE_LABEL_KEYS and k != VIRTUAL_NODE_TYPE[0])
        if owned:
            raise ConfigError(
                f"{path}: the virtual-node worker sets {', '.join(owned)}, which the profile decides",
                hint='remove it from kind-config.yaml; choose the kind of virtual node with `profile = '
                '"aci-v1"` or `"aci-v2"` in sandbox.toml (or SANDBOX_PROFILE)',
            )
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


def render_kind_config(text: str, profile: str) -> str:
    """The config kind gets: kind-config.yaml with the profile's labels and --max-pods on the
    virtual-node worker(s). Both only take effect when the node registers (kubelet applies
    --node-labels only when it registers the node, --max-pods when it starts; kubeadm's
    JoinConfiguration only at join), so a profile switch on an existing cluster relabels through
    the API (`sandbox.core.cluster.ensure_virtual_node`).

    --max-pods goes in as an unversioned JoinConfiguration patch whose kubeletExtraArgs kind merges
    by name into its own (node-ip, provider-id, node-labels) for kubeadm v1beta4, converting the
    map form (kind pkg/internal/patch/kubeadm_merge.go, since v0.32.0); the kubelet flag is
    --max-pods (kubernetes cmd/kubelet/app/options/options.go).
    """
    kind = virtual_node_kind(profile)
    raw = yaml.safe_load(text)
    for node in raw["nodes"]:
        labels = node.get("labels") or {}
        if node.get("role") != "worker" or labels.get(VIRTUAL_NODE_TYPE[0]) != VIRTUAL_NODE_TYPE[1]:
            continue
        node["labels"] = {**labels, **kind.kind_labels}
        if kind.max_pods is not None:
            patch = {
                "kind": "JoinConfiguration",
                "nodeRegistration": {"kubeletExtraArgs": {"max-pods": str(kind.max_pods)}},
            }
            node["kubeadmConfigPatches"] = [
                *(node.get("kubeadmConfigPatches") or []),
                yaml.safe_dump(patch, sort_keys=False),
            ]
    header = f"# Rendered by `sandbox up` from kind-config.yaml for profile {profile}; edit that file.\n"
    return header + yaml.dump(raw, Dumper=_BlockDumper, sort_keys=False)


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (the kubeadm patches) as `|` blocks, readable as in kind-config.yaml."""


_BlockDumper.add_representer(
    str,
    lambda dumper, value: dumper.represent_scalar(
        "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None
    ),
)


def declared_nodes(
    settings: Settings, config: KindClusterConfig | None = None, *, profile: str | None = None
) -> list[NodeSpec]:
    """The nodes as they will exist after `sandbox up` for `profile` (default: the settings'):
    kind's names, kubelet's default labels, the profile's virtual node."""
    config = config or load_kind_config(settings.kind_config)
    kind = virtual_node_kind(profile or settings.profile)
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
            labels.update(kind.labels)
        specs.append(
            NodeSpec(
                name=name,
                role=node.role,
                labels=labels,
                taints=tuple(taints),
                is_virtual_node=node.is_virtual_node,
                pods_capacity=kind.max_pods if node.is_virtual_node else None,
            )
        )
    return specs
