"""The kind cluster and its simulated AKS virtual node: ensure, verify, report, delete.

Which cluster is ours: `ensure_cluster` writes `.sandbox/cluster.json` (name, state, hash of
kind-config.yaml) *before* running `kind create`. A kind cluster of the same name without that
record was made by someone else and is never touched (up refuses, down refuses to delete it).
The record's state also makes an interrupted create resumable: "creating" with a cluster present
means a Ctrl-C'd or crashed `kind create`, and that half-made cluster (ours) is deleted and
created again. The record sits next to the admin kubeconfig and goes with `down --purge`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sandbox.config import Settings
from sandbox.core.kind_config import (
    PROFILE_LABEL_KEYS,
    VIRTUAL_NODE_TAINT,
    VIRTUAL_NODE_TYPE,
    NodeSpec,
    declared_nodes,
    kind_of_labels,
    load_kind_config,
    render_kind_config,
    virtual_node_kind,
)
from sandbox.core.ports import KindApi
from sandbox.core.tools import KIND_MISSING_HINT
from sandbox.errors import ClusterError, CommandFailed, KubeApiError, SandboxError, ToolMissing
from sandbox.models import Node
from sandbox.progress import Reporter
from sandbox.state import StateDir, write_private, write_private_if_changed
from sandbox.text import last_line
from sandbox.waiting import NotReady, wait_until

T = TypeVar("T")
RECREATE_HINT = "recreate the cluster: `sandbox down --purge && sandbox up`"
# `down` deletes the cluster but keeps the Airflow database volume, images and .sandbox/.
RECREATE_KEEPING_DATA = "`sandbox down && sandbox up` recreates the cluster (your Airflow database and images are kept)"


class NodesApi(Protocol):
    def nodes(self) -> list[Node]: ...
    def label_node(self, name: str, labels: Mapping[str, str | None]) -> None: ...


@dataclass(frozen=True)
class ClusterRecord:
    name: str
    state: str  # "creating" | "created"
    config_sha256: str


def read_cluster_record(state: StateDir) -> ClusterRecord | None:
    try:
        return ClusterRecord(**json.loads(state.cluster_record.read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def _write_record(state: StateDir, record: ClusterRecord) -> None:
    state.ensure()
    write_private(state.cluster_record, json.dumps(asdict(record), indent=2))


def _config_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _foreign(name: str) -> ClusterError:
    return ClusterError(
        f"a kind cluster named {name!r} exists but was not created by this sandbox",
        hint=f'use another name (`name = "..."` in sandbox.toml or SANDBOX_NAME), or, if you no longer '
        f"need that cluster, delete it yourself: `kind delete cluster --name {name}`",
    )


def _kind_installed(call: Callable[[], T]) -> T:
    try:
        return call()
    except ToolMissing as exc:
        raise ToolMissing(exc.tool, hint=KIND_MISSING_HINT) from None


def _kind(what: str, call: Callable[[], T]) -> T:
    """Run a kind query; Docker being down or kind missing become one error with a hint."""
    try:
        return _kind_installed(call)
    except CommandFailed as exc:
        raise ClusterError(
            f"cannot {what}: {_tail(exc.stderr)}",
            hint="is Docker running? `sandbox doctor` checks everything the cluster needs",
        ) from None


def is_ours(settings: Settings, state: StateDir) -> bool:
    record = read_cluster_record(state)
    return record is not None and record.name == settings.cluster_name


def ensure_cluster(
    settings: Settings,
    kind: KindApi,
    state: StateDir,
    reporter: Reporter,
) -> None:
    """Create the cluster from kind-config.yaml unless it exists; write .sandbox/kubeconfig-admin."""
    config = load_kind_config(settings.kind_config)
    digest = _config_digest(settings.kind_config)
    name = settings.cluster_name
    expected = sorted(n.name for n in declared_nodes(settings, config))
    record = read_cluster_record(state)
    if name in _kind("list kind clusters", kind.clusters):
        if record is None or record.name != name:
            raise _foreign(name)
        problem = None
        present: list[str] = []
        if record.state != "created":
            problem = "an earlier `sandbox up` was interrupted while creating it"
        else:
            present = sorted(_kind(f"list the nodes of cluster {name}", lambda: kind.nodes(name)))
            if record.config_sha256 == digest and present != expected:
                problem = (
                    f"it has nodes {', '.join(present) or '(none)'}, expected {', '.join(expected)}"
                )
        if problem is None:
            if record.config_sha256 != digest:
                reporter.info(
                    f"kind-config.yaml changed since cluster {name} was created; {RECREATE_HINT} to apply it"
                )
            _write_admin_kubeconfig(settings, kind, state)
            return
        reporter.info(f"cluster {name} is incomplete ({problem}); deleting and creating it again")
        with reporter.step(f"delete incomplete cluster {name}"):
            _kind(f"delete cluster {name}", lambda: kind.delete(name, kubeconfig=state.admin_kubeconfig))
    _write_record(state, ClusterRecord(name, "creating", digest))
    rendered = state.rendered_kind_config
    write_private(rendered, render_kind_config(settings.kind_config.read_text(), settings.profile))
    with reporter.step(f"create kind cluster {name}"):
        try:
            kind.create(
                name,
                rendered,
                wait=f"{int(settings.timeouts.node_ready)}s",
                on_line=reporter.output,
                kubeconfig=state.admin_kubeconfig,
                timeout=settings.timeouts.cluster_create,
            )
        except ToolMissing as exc:
            raise ToolMissing(exc.tool, hint=KIND_MISSING_HINT) from None
        except CommandFailed as exc:
            raise ClusterError(
                f"kind could not create cluster {name}: {_tail(exc.stderr)}",
                hint="run `sandbox up -v` to see kind's output; `sandbox doctor` checks Docker's memory and disk; "
                "then run `sandbox up` again",
            ) from None
    _write_record(state, ClusterRecord(name, "created", digest))
    _write_admin_kubeconfig(settings, kind, state)


def _write_admin_kubeconfig(settings: Settings, kind: KindApi, state: StateDir) -> None:
    try:
        text = _kind_installed(lambda: kind.kubeconfig(settings.cluster_name))
    except CommandFailed as exc:
        raise ClusterError(
            f"cannot read the kubeconfig of cluster {settings.cluster_name}: {_tail(exc.stderr)}",
            hint=f"its node containers may be stopped: start Docker (or `docker start {settings.control_plane_host}`), "
            "then run `sandbox up` again",
        ) from None
    write_private_if_changed(state.admin_kubeconfig, text)


def _tail(stderr: str) -> str:
    return last_line(stderr, "(no output)")


def verify_nodes(specs: Sequence[NodeSpec], nodes: Sequence[Node]) -> list[str]:
    """What keeps the cluster from matching AKS: each missing or stray label, missing taint, by
    node (empty = fine). Pod capacity is not checked here: see `capacity_note`."""
    by_name = {n.name: n for n in nodes}
    problems = []
    for spec in specs:
        node = by_name.get(spec.name)
        if node is None:
            problems.append(f"node {spec.name} does not exist")
            continue
        if spec.is_virtual_node:
            for key, value in _label_changes(spec, node, _VIRTUAL_KEYS).items():
                if value is None:
                    problems.append(
                        f"virtual node {spec.name} has label {key}={node.labels[key]}, which this profile's lacks"
                    )
                elif key not in node.labels:
                    problems.append(f"virtual node {spec.name} lacks label {key}={value}")
                else:
                    problems.append(
                        f"virtual node {spec.name} has label {key}={node.labels[key]}, expected {value}"
                    )
            if VIRTUAL_NODE_TAINT not in node.taints:
                problems.append(f"virtual node {spec.name} lacks taint {VIRTUAL_NODE_TAINT}")
        elif any(t.key == VIRTUAL_NODE_TAINT.key for t in node.taints):
            problems.append(
                f"node {spec.name} carries the virtual-node taint {VIRTUAL_NODE_TAINT.key} but is not the virtual node"
            )
    return problems


def _label_changes(spec: NodeSpec, node: Node, keys: frozenset[str]) -> dict[str, str | None]:
    """The label changes among `keys` that make `node` the virtual node `spec` declares: set what
    is missing or different, remove (None) what only another profile's virtual node carries."""
    changes: dict[str, str | None] = {
        k: v for k, v in spec.labels.items() if k in keys and node.labels.get(k) != v
    }
    changes.update({k: None for k in PROFILE_LABEL_KEYS if k in node.labels and k not in spec.labels})
    return changes


# The labels that make a node the virtual node: every profile's own, and the OS labels (kubelet
# sets them, but the deprecated beta one is what the AKS v1 docs' nodeSelector names and a future
# kubelet may stop setting it). kubernetes.io/hostname and arch are kubelet's alone.
_VIRTUAL_KEYS = PROFILE_LABEL_KEYS | {"kubernetes.io/os", "beta.kubernetes.io/os"}
# What `up` sets through the API: all of them but `type`, which marks the worker in
# kind-config.yaml (a node without it was not made from that file: recreate, do not patch).
_RELABEL_KEYS = _VIRTUAL_KEYS - {VIRTUAL_NODE_TYPE[0]}


def capacity_note(spec: NodeSpec, node: Node) -> str | None:
    """One line when the virtual node's pod capacity is not the profile's. Kubelet reads
    --max-pods when it starts and reports it as status.capacity.pods on every status update, so
    neither a relabel nor a PATCH of the status can change it: only a new node can."""
    if spec.pods_capacity is None or node.pods_capacity in (None, spec.pods_capacity):
        return None  # no capacity in the profile, none reported yet, or the right one
    kind = kind_of_labels(spec.labels)
    title = kind.title if kind else "the virtual node"
    return (
        f"virtual node {spec.name} takes {node.pods_capacity} pods; a {title} takes "
        f"{spec.pods_capacity}: {RECREATE_KEEPING_DATA} with that capacity"
    )


def _ready_nodes(kube: NodesApi, specs: Sequence[NodeSpec]) -> list[Node]:
    try:
        nodes = kube.nodes()
    except KubeApiError:
        raise
    except ClusterError as exc:  # API server not answering yet, right after create/restart
        raise NotReady(exc.message) from None
    by_name = {n.name: n for n in nodes}
    missing = [s.name for s in specs if s.name not in by_name]
    if missing:
        raise NotReady(f"nodes not registered yet: {', '.join(missing)}")
    not_ready = [s.name for s in specs if not by_name[s.name].ready]
    if not_ready:
        raise NotReady(f"nodes not Ready: {', '.join(not_ready)}")
    return nodes


def ensure_virtual_node(settings: Settings, kube: NodesApi, reporter: Reporter) -> None:
    """Wait for every node Ready, give the virtual node the profile's labels through the API
    (those kubelet refuses, and all of them after a profile switch: kubelet applies --node-labels
    only when it registers a node, and on an existing node reconciles only its default labels,
    kubernetes pkg/kubelet/kubelet_node_status.go updateDefaultLabels), verify every label and
    taint, and say so when the pod capacity needs a new cluster."""
    specs = declared_nodes(settings)
    with reporter.step("wait for nodes Ready"):
        nodes = wait_until(
            lambda: _ready_nodes(kube, specs),
            what=f"the nodes of cluster {settings.cluster_name} to be Ready",
            timeout=settings.timeouts.node_ready,
            interval=1.0,
            hint=f"`kubectl --kubeconfig .sandbox/kubeconfig-admin describe nodes` shows why; {RECREATE_HINT}",
        )
    title = virtual_node_kind(settings.profile).title
    with reporter.step(f"label and verify the virtual node ({title})"):
        by_name = {n.name: n for n in nodes}
        relabelled = False
        for spec in (s for s in specs if s.is_virtual_node):
            changes = _label_changes(spec, by_name[spec.name], _RELABEL_KEYS)
            if changes:
                kube.label_node(spec.name, changes)
                relabelled = True
        if relabelled:
            nodes = kube.nodes()
        problems = verify_nodes(specs, nodes)
        if problems:
            raise ClusterError(
                "the virtual node does not match AKS's: " + "; ".join(problems), hint=RECREATE_HINT
            )
    by_name = {n.name: n for n in nodes}
    for spec in (s for s in specs if s.is_virtual_node):
        note = capacity_note(spec, by_name[spec.name])
        if note:
            reporter.info(note)


@dataclass(frozen=True)
class NodeStatus:
    name: str
    role: str
    ready: bool
    is_virtual_node: bool
    labels: Mapping[str, str]
    taints: tuple[str, ...]
    kind: str = ""  # what the live node is: its role, or which profile's virtual node its labels make it
    pods_capacity: int | None = None


@dataclass(frozen=True)
class ClusterStatus:
    name: str
    exists: bool
    ours: bool
    nodes: tuple[NodeStatus, ...] = ()
    virtual_node_verified: bool = False
    problems: tuple[str, ...] = field(default=())
    notes: tuple[str, ...] = field(default=())  # worth knowing, not unhealthy (pod capacity)

    @property
    def ok(self) -> bool:
        return self.exists and self.ours and self.virtual_node_verified and not self.problems

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


def cluster_status(settings: Settings, kind: KindApi, kube: NodesApi | None) -> ClusterStatus:
    """What `sandbox status` shows for the cluster; never raises for an absent/broken cluster."""
    name = settings.cluster_name
    try:
        exists = name in kind.clusters()
    except SandboxError as exc:
        return ClusterStatus(
            name, exists=False, ours=False, problems=(f"cannot list kind clusters: {exc.message}",)
        )
    if not exists:
        return ClusterStatus(
            name,
            exists=False,
            ours=False,
            problems=(f"cluster {name} does not exist (run `sandbox up`)",),
        )
    ours = is_ours(settings, StateDir(settings.state_dir))
    problems: list[str] = [] if ours else [f"cluster {name} was not created by this sandbox"]
    try:
        specs = declared_nodes(settings)
    except SandboxError as exc:
        return ClusterStatus(name, True, ours, problems=(*problems, exc.message))
    if kube is None:
        problems.append("cannot check nodes: no admin kubeconfig (run `sandbox up`)")
        return ClusterStatus(name, True, ours, problems=tuple(problems))
    try:
        nodes = kube.nodes()
    except SandboxError as exc:
        return ClusterStatus(name, True, ours, problems=(*problems, exc.message))
    roles = {s.name: s for s in specs}
    statuses = tuple(_node_status(n, roles.get(n.name)) for n in nodes)
    problems += [f"node {n.name} is not Ready" for n in nodes if not n.ready]
    wanted = virtual_node_kind(settings.profile)
    by_name = {n.name: n for n in nodes}
    other_profiles = {  # a virtual node that is wholly another profile's: one line, not one per label
        s.name: live
        for s in specs
        if s.is_virtual_node and s.name in by_name
        and (live := kind_of_labels(by_name[s.name].labels)) is not None and live is not wanted
    }
    verification = verify_nodes([s for s in specs if s.name not in other_profiles], nodes)
    verification += [
        f"virtual node {name} is a {live.title} but the profile is {wanted.profile}: run `sandbox up` to relabel it"
        for name, live in other_profiles.items()
    ]
    notes = [
        note
        for s in specs
        if s.is_virtual_node and s.name in by_name and s.name not in other_profiles
        and (note := capacity_note(s, by_name[s.name]))
    ]
    problems += verification
    return ClusterStatus(
        name,
        True,
        ours,
        statuses,
        virtual_node_verified=not verification,
        problems=tuple(problems),
        notes=tuple(notes),
    )


def _node_status(node: Node, spec: NodeSpec | None) -> NodeStatus:
    is_virtual = spec is not None and spec.is_virtual_node
    if is_virtual:
        live = kind_of_labels(node.labels)
        kind = live.title if live else "virtual node (its labels match no profile)"
    else:
        kind = spec.role if spec is not None else "unknown"
    return NodeStatus(
        name=node.name,
        role=spec.role if spec is not None else "unknown",
        ready=node.ready,
        is_virtual_node=is_virtual,
        labels=dict(node.labels),
        taints=tuple(str(t) for t in node.taints),
        kind=kind,
        pods_capacity=node.pods_capacity,
    )


def delete_cluster(settings: Settings, kind: KindApi) -> None:
    """Delete the cluster if it exists and is ours (idempotent); forget its record and kubeconfig."""
    state = StateDir(settings.state_dir)
    name = settings.cluster_name
    if name in _kind("list kind clusters", kind.clusters):
        if not is_ours(settings, state):
            raise _foreign(name)
        _kind(f"delete cluster {name}", lambda: kind.delete(name, kubeconfig=state.admin_kubeconfig))
    state.cluster_record.unlink(missing_ok=True)
    state.admin_kubeconfig.unlink(missing_ok=True)
