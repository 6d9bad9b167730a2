"""The ACI rule set: loaded from sandbox/policy/aci_rules.yaml, rendered as admission policies
for the cluster and evaluated locally for `sandbox lint` — one set of CEL expressions, two users.

The cluster gets two ValidatingAdmissionPolicies per profile (admissionregistration.k8s.io/v1,
GA in Kubernetes 1.30): one holding the deny rules, bound with validationActions [Deny], and one
holding the warn rules, bound with [Warn]. The action belongs to a binding, not to a validation,
hence two policies. Both match pod CREATEs that tolerate the virtual node's taint, which the
virtual nodes of both profiles carry (sandbox.core.kind_config.VIRTUAL_NODE_TAINT): the profile
changes the rules and the node's labels, not which tolerations reach the node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

import yaml

from sandbox.config import PROFILES
from sandbox.errors import ConfigError

Severity = Literal["deny", "warn"]
RULES_FILE = "aci_rules.yaml"
POLICY_PREFIX = "sandbox-aci"
MANAGED_BY = {"app.kubernetes.io/managed-by": "sandbox"}
# System pods (kindnet, kube-proxy tolerate every taint) are not task pods: AKS keeps DaemonSets
# off the virtual node, the policy leaves them alone.
EXEMPT_NAMESPACES = ("kube-system",)


@dataclass(frozen=True)
class Rule:
    id: str
    profiles: tuple[str, ...]
    severity: Severity
    expression: str
    message: str
    doc: str

    @property
    def text(self) -> str:
        """The message as the API server and `sandbox lint` both show it."""
        return f"[aci:{self.id}] {self.message}"


@dataclass(frozen=True)
class RuleSet:
    match_name: str
    match_expression: str
    rules: tuple[Rule, ...]

    def for_profile(self, profile: str) -> tuple[Rule, ...]:
        if profile not in PROFILES:
            raise ConfigError(f"unknown profile {profile!r}", hint=f"use one of: {', '.join(PROFILES)}")
        return tuple(r for r in self.rules if profile in r.profiles)


@cache
def load_rules() -> RuleSet:
    """Parse and check the packaged rule file (a broken file is a bug, reported plainly)."""
    text = resources.files("sandbox.policy").joinpath(RULES_FILE).read_text()
    return parse_rules(yaml.safe_load(text))


def parse_rules(raw: Mapping[str, Any]) -> RuleSet:
    where = f"sandbox/policy/{RULES_FILE}"
    try:
        match = raw["match"]
        rules = tuple(
            Rule(
                id=str(r["id"]),
                profiles=tuple(r["profiles"]),
                severity=r["severity"],
                expression=" ".join(str(r["expression"]).split()),
                message=" ".join(str(r["message"]).split()),
                doc=str(r["doc"]),
            )
            for r in raw["rules"]
        )
        match_name, match_expression = str(match["name"]), " ".join(str(match["expression"]).split())
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"{where} is malformed: missing or wrong field {exc}") from exc
    for rule in rules:
        if rule.severity not in ("deny", "warn"):
            raise ConfigError(f"{where}: rule {rule.id} has severity {rule.severity!r} (deny|warn)")
        unknown = set(rule.profiles) - set(PROFILES)
        if unknown or not rule.profiles:
            raise ConfigError(f"{where}: rule {rule.id} names unknown profiles {sorted(unknown)}")
    for profile in PROFILES:
        ids = [r.id for r in rules if profile in r.profiles]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ConfigError(f"{where}: rule ids repeated in profile {profile}: {duplicates}")
    return RuleSet(match_name, match_expression, rules)


def policy_manifests(profile: str) -> list[dict[str, Any]]:
    """The policies and bindings `sandbox up` applies for `profile` (names fixed across
    profiles, so applying another profile replaces the previous one)."""
    rule_set = load_rules()
    rules = rule_set.for_profile(profile)
    manifests: list[dict[str, Any]] = []
    for severity, action, failure in (("deny", "Deny", "Fail"), ("warn", "Warn", "Ignore")):
        name = f"{POLICY_PREFIX}-{severity}"
        metadata = {
            "name": name,
            "labels": dict(MANAGED_BY),
            "annotations": {"sandbox/profile": profile},
        }
        manifests.append(
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicy",
                "metadata": metadata,
                "spec": {
                    "failurePolicy": failure,
                    "matchConstraints": {
                        "resourceRules": [
                            {
                                "apiGroups": [""],
                                "apiVersions": ["v1"],
                                "operations": ["CREATE"],
                                "resources": ["pods"],
                            }
                        ],
                        "namespaceSelector": {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/metadata.name",
                                    "operator": "NotIn",
                                    "values": list(EXEMPT_NAMESPACES),
                                }
                            ]
                        },
                    },
                    "matchConditions": [
                        {"name": rule_set.match_name, "expression": rule_set.match_expression}
                    ],
                    "validations": [
                        {"expression": r.expression, "message": r.text, "reason": "Forbidden"}
                        for r in rules
                        if r.severity == severity
                    ],
                },
            }
        )
        manifests.append(
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicyBinding",
                "metadata": {**metadata, "annotations": dict(metadata["annotations"])},
                "spec": {"policyName": name, "validationActions": [action]},
            }
        )
    return manifests


@dataclass(frozen=True)
class PodVerdict:
    """What the admission policy would say about one pod."""

    matched: bool
    violations: tuple[Rule, ...]
    warnings: tuple[Rule, ...]
    errors: tuple[str, ...]  # a rule that could not be evaluated refuses the pod (failurePolicy Fail)


def check_pod(pod: Mapping[str, Any], profile: str, *, assume_matched: bool = False) -> PodVerdict:
    """Evaluate the profile's rules over a pod dict exactly as the admission policy would.
    `assume_matched`: evaluate the rules even if the pod does not tolerate the virtual node
    (to say what would refuse it there)."""
    from sandbox.core.cel_k8s import CelError, activation, evaluate

    rule_set = load_rules()
    variables = activation({"object": pod})
    try:
        matched = assume_matched or bool(evaluate(rule_set.match_expression, variables))
    except CelError as exc:
        return PodVerdict(True, (), (), (f"match condition failed: {exc}",))
    if not matched:
        return PodVerdict(False, (), (), ())
    violations: list[Rule] = []
    warnings: list[Rule] = []
    errors: list[str] = []
    for rule in rule_set.for_profile(profile):
        try:
            ok = bool(evaluate(rule.expression, variables))
        except CelError as exc:
            if rule.severity == "deny":
                errors.append(f"[aci:{rule.id}] could not be evaluated: {exc}")
            continue
        if not ok:
            (violations if rule.severity == "deny" else warnings).append(rule)
    return PodVerdict(True, tuple(violations), tuple(warnings), tuple(errors))
