"""Where the scheduler would put a pod among the sandbox's declared nodes, and why.

A pod is held to the ACI rules only if it can land on the virtual node, so `sandbox lint` must
predict placement the way kube-scheduler filters nodes: nodeSelector, required node affinity
(In/NotIn/Exists/DoesNotExist/Gt/Lt, matchFields on metadata.name), and NoSchedule/NoExecute
taints against tolerations (operator Exists, empty key = every key, empty effect = every effect);
a pod with spec.nodeName skips the scheduler and only NoExecute taints keep it off.
Resources and ports are not modelled: kind nodes and the virtual node have room to spare.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sandbox.core.kind_config import NodeSpec, Taint

Target = Literal["virtual-node", "worker", "virtual-node-or-worker", "unschedulable"]
_BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")


@dataclass(frozen=True)
class Placement:
    target: Target
    nodes: tuple[str, ...]  # the nodes the pod fits on
    reason: str  # the nodes it fits and why not the virtual node; if none, why each refuses

    @property
    def reaches_virtual_node(self) -> bool:
        return self.target in ("virtual-node", "virtual-node-or-worker")


def tolerates(tolerations: Sequence[Mapping[str, Any]], taint: Taint) -> bool:
    """Kubernetes' Toleration.ToleratesTaint over the pod's tolerations."""
    for t in tolerations:
        effect = t.get("effect") or ""
        if effect and effect != taint.effect:
            continue
        key = t.get("key") or ""
        operator = t.get("operator") or "Equal"
        if key and key != taint.key:
            continue
        if operator == "Exists":
            return True
        if operator == "Equal" and key and (t.get("value") or "") == taint.value:
            return True
    return False


def _expression_matches(expr: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, operator = expr.get("key", ""), expr.get("operator", "")
    values = [str(v) for v in expr.get("values") or []]
    present = key in labels
    if operator == "In":
        return present and labels[key] in values
    if operator == "NotIn":
        return not present or labels[key] not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt"):
        try:
            have, want = int(labels[key]), int(values[0])
        except (KeyError, IndexError, ValueError):
            return False
        return have > want if operator == "Gt" else have < want
    return False  # an unknown operator matches nothing (the API server would refuse it)


def _term_matches(term: Mapping[str, Any], node: NodeSpec) -> bool:
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False  # an empty term matches no node
    by_field = {"metadata.name": node.name}
    return all(_expression_matches(e, node.labels) for e in expressions) and all(
        _expression_matches(f, by_field) for f in fields
    )


def _refusal(spec: Mapping[str, Any], node: NodeSpec) -> str | None:
    """Why `node` cannot take the pod, or None when it can."""
    node_name = spec.get("nodeName")
    if node_name and node_name != node.name:
        return f"spec.nodeName is {node_name}"
    for key, value in (spec.get("nodeSelector") or {}).items():
        if node.labels.get(key) != value:
            return f"nodeSelector {key}={value} does not match"
    required = (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        or {}
    )
    terms = required.get("nodeSelectorTerms")
    if required and not any(_term_matches(t, node) for t in terms or []):
        return "required node affinity does not match"
    tolerations = spec.get("tolerations") or []
    # A pod bound by nodeName skips the scheduler; kubelet only enforces NoExecute taints.
    blocking = ("NoExecute",) if node_name else _BLOCKING_EFFECTS
    for taint in node.taints:
        if taint.effect in blocking and not tolerates(tolerations, taint):
            return f"taint {taint} is not tolerated"
    return None


def predict(pod: Mapping[str, Any], nodes: Sequence[NodeSpec]) -> Placement:
    """The target class of a pod dict (as rendered by the provider) among `nodes`."""
    spec = pod.get("spec") or {}
    fits: list[NodeSpec] = []
    refusals: list[str] = []
    virtual_refusals: list[str] = []
    for node in nodes:
        why = _refusal(spec, node)
        if why is None:
            fits.append(node)
            continue
        kind = "virtual node" if node.is_virtual_node else node.role
        refusals.append(f"{node.name} ({kind}): {why}")
        if node.is_virtual_node:
            virtual_refusals.append(refusals[-1])
    virtual = any(n.is_virtual_node for n in fits)
    ordinary = any(not n.is_virtual_node for n in fits)
    target: Target
    if virtual and ordinary:
        target = "virtual-node-or-worker"
    elif virtual:
        target = "virtual-node"
    elif ordinary:
        target = "worker"
    else:
        return Placement("unschedulable", (), "; ".join(refusals) or "no nodes declared")
    reason = "fits " + ", ".join(n.name for n in fits)
    if virtual_refusals:  # say why it stays off the virtual node
        reason += "; not " + "; ".join(virtual_refusals)
    return Placement(target, tuple(n.name for n in fits), reason)
