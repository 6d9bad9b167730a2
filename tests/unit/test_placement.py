"""Placement prediction against the nodes `sandbox up` declares (kind-config.yaml + labels/taint)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sandbox.config import load_settings
from sandbox.core.kind_config import NodeSpec, Taint, declared_nodes
from sandbox.core.placement import predict, tolerates
from support import AKS_NODE_SELECTOR, AKS_TOLERATIONS, AKS_V2_NODE_SELECTOR, AKS_V2_TOLERATIONS

TOLERATE = {"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}
VK = Taint("virtual-kubelet.io/provider", "azure", "NoSchedule")


@pytest.fixture(scope="module")
def nodes(repo: Path) -> list[NodeSpec]:
    return declared_nodes(load_settings(repo, environ={}))


def pod(**spec: Any) -> dict[str, Any]:
    return {"spec": {"containers": [{"name": "base", "image": "busybox:1.36"}], **spec}}


def affinity(*expressions: dict[str, Any], fields: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    term: dict[str, Any] = {"matchExpressions": list(expressions)}
    if fields:
        term["matchFields"] = fields
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}


def test_the_declared_cluster_has_one_virtual_node(nodes: list[NodeSpec]) -> None:
    virtual = [n for n in nodes if n.is_virtual_node]
    assert len(virtual) == 1 and VK in virtual[0].taints
    assert virtual[0].labels["type"] == "virtual-kubelet"


@pytest.mark.parametrize(
    ("spec", "target"),
    [
        ({}, "worker"),
        ({"tolerations": [TOLERATE]}, "virtual-node-or-worker"),
        ({"tolerations": [TOLERATE], "nodeSelector": {"type": "virtual-kubelet"}}, "virtual-node"),
        ({"nodeSelector": {"type": "virtual-kubelet"}}, "unschedulable"),  # no toleration
        ({"tolerations": [TOLERATE], "nodeSelector": {"type": "virtual-kubelett"}}, "unschedulable"),
        ({"tolerations": [TOLERATE], "nodeSelector": {"kubernetes.io/role": "agent", "beta.kubernetes.io/os": "linux",
                                                      "type": "virtual-kubelet"}}, "virtual-node"),
        ({"tolerations": [TOLERATE], "affinity": affinity({"key": "type", "operator": "In", "values": ["virtual-kubelet"]})},
         "virtual-node"),
        ({"tolerations": [TOLERATE], "affinity": affinity({"key": "type", "operator": "NotIn", "values": ["virtual-kubelet"]})},
         "worker"),
        ({"tolerations": [TOLERATE], "affinity": affinity({"key": "type", "operator": "Exists"})}, "virtual-node"),
        ({"tolerations": [TOLERATE], "affinity": affinity({"key": "type", "operator": "DoesNotExist"})}, "worker"),
        ({"affinity": affinity({"key": "type", "operator": "In", "values": ["virtual-kubelet"]})}, "unschedulable"),
        ({"tolerations": [{"operator": "Exists"}]}, "virtual-node-or-worker"),  # tolerates every taint
        ({"tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Equal", "value": "azure"}],
          "nodeSelector": {"type": "virtual-kubelet"}}, "virtual-node"),
        ({"tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Equal", "value": "aws"}],
          "nodeSelector": {"type": "virtual-kubelet"}}, "unschedulable"),
        ({"tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoExecute"}],
          "nodeSelector": {"type": "virtual-kubelet"}}, "unschedulable"),  # wrong effect
        ({"nodeSelector": {"node-role.kubernetes.io/control-plane": ""}}, "unschedulable"),  # control-plane taint
        ({"nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
          "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]}, "worker"),
    ],
)
def test_targets(nodes: list[NodeSpec], spec: dict[str, Any], target: str) -> None:
    assert predict(pod(**spec), nodes).target == target


@pytest.mark.parametrize(
    ("selector", "tolerations", "v1", "v2"),
    [
        # The v2 documentation's pod (README): only the v2 node carries virtualization=virtualnode2.
        (AKS_V2_NODE_SELECTOR, AKS_V2_TOLERATIONS, "unschedulable", "virtual-node"),
        # The AKS v1 docs' pod: the v2 node carries type, role and OS labels too (see kind_config).
        (AKS_NODE_SELECTOR, AKS_TOLERATIONS, "virtual-node", "virtual-node"),
        # v2's toleration without a selector: either node, under both profiles.
        (None, AKS_V2_TOLERATIONS, "virtual-node-or-worker", "virtual-node-or-worker"),
    ],
)
def test_placement_follows_the_profile(repo: Path, selector, tolerations, v1: str, v2: str) -> None:
    settings = load_settings(repo, environ={})
    spec: dict[str, Any] = {"tolerations": tolerations}
    if selector:
        spec["nodeSelector"] = selector
    for profile, target in (("aci-v1", v1), ("aci-v2", v2)):
        placement = predict(pod(**spec), declared_nodes(settings, profile=profile))
        assert placement.target == target, (profile, placement.reason)
    if v1 == "unschedulable":
        reason = predict(pod(**spec), declared_nodes(settings, profile="aci-v1")).reason
        assert "sandbox-worker2 (virtual node): nodeSelector virtualization=virtualnode2 does not match" in reason


def test_reasons_name_the_blocking_node_and_rule(nodes: list[NodeSpec]) -> None:
    placement = predict(pod(nodeSelector={"type": "virtual-kubelet"}), nodes)
    assert "sandbox-worker2 (virtual node): taint virtual-kubelet.io/provider=azure:NoSchedule is not tolerated" in placement.reason
    assert "sandbox-worker (worker): nodeSelector type=virtual-kubelet does not match" in placement.reason
    worker = predict(pod(), nodes)
    assert worker.nodes == ("sandbox-worker",) and worker.reason.startswith("fits sandbox-worker; not sandbox-worker2")
    assert not worker.reaches_virtual_node


def test_gt_lt_match_fields_and_ignored_effects() -> None:
    nodes = [
        NodeSpec("small", "worker", {"cores": "4"}, (), False),
        NodeSpec("big", "worker", {"cores": "16"}, (Taint("spot", "", "PreferNoSchedule"),), False),
        NodeSpec("vk", "worker", {"cores": "x"}, (VK,), True),
    ]
    gt = affinity({"key": "cores", "operator": "Gt", "values": ["8"]})
    lt = affinity({"key": "cores", "operator": "Lt", "values": ["8"]})
    assert predict(pod(affinity=gt, tolerations=[TOLERATE]), nodes).nodes == ("big",)  # "x" is no integer
    assert predict(pod(affinity=lt), nodes).nodes == ("small",)
    by_name = affinity(fields=[{"key": "metadata.name", "operator": "In", "values": ["vk"]}])
    assert predict(pod(affinity=by_name, tolerations=[TOLERATE]), nodes).target == "virtual-node"
    empty_term = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{}]}}}
    assert predict(pod(affinity=empty_term), nodes).target == "unschedulable"
    assert predict(pod(nodeName="vk"), nodes).target == "virtual-node"  # binding skips NoSchedule
    assert predict(pod(nodeName="gone"), nodes).target == "unschedulable"


def test_toleration_semantics() -> None:
    assert tolerates([{"operator": "Exists"}], VK)
    assert tolerates([{"key": "virtual-kubelet.io/provider", "operator": "Exists"}], VK)
    assert tolerates([{"key": "virtual-kubelet.io/provider", "value": "azure"}], VK)  # operator defaults to Equal
    assert not tolerates([{"key": "virtual-kubelet.io/provider"}], VK)  # Equal "" != "azure"
    assert not tolerates([{"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoExecute"}], VK)
    assert not tolerates([], VK)
