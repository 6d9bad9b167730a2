"""The admission policy rendered from the rule set: schema-valid, one profile at a time, and
carrying exactly the expressions `sandbox lint` evaluates locally."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from sandbox.config import PROFILES
from sandbox.core.cel_k8s import activation, evaluate
from sandbox.core.policy import check_pod, load_rules, parse_rules, policy_manifests
from sandbox.errors import ConfigError

# What the API server's CEL environment offers since Kubernetes 1.30 and the rules may call.
K8S_130_FUNCTIONS = {
    "has", "size", "all", "exists", "map", "contains", "matches", "endsWith", "startsWith",
    "quantity", "asApproximateFloat", "sum", "isGreaterThan", "isLessThan", "compareTo",
}


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("version", ["1.30.0", kubernetes_validate.latest_version()])
def test_manifests_match_the_kubernetes_schema(profile: str, version: str) -> None:
    manifests = policy_manifests(profile)
    assert [m["kind"] for m in manifests] == [
        "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
    ] * 2
    for manifest in manifests:
        kubernetes_validate.validate(manifest, version, strict=True)


def test_schema_validation_can_fail() -> None:
    manifest = policy_manifests("aci-v1")[0]
    manifest["spec"]["validations"][0]["mesage"] = "typo"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(manifest, "1.30.0", strict=True)


def test_deny_and_warn_are_separate_bindings() -> None:
    deny, deny_binding, warn, warn_binding = policy_manifests("aci-v1")
    assert deny_binding["spec"] == {"policyName": deny["metadata"]["name"], "validationActions": ["Deny"]}
    assert warn_binding["spec"] == {"policyName": warn["metadata"]["name"], "validationActions": ["Warn"]}
    assert deny["spec"]["failurePolicy"] == "Fail"
    assert warn["spec"]["failurePolicy"] == "Ignore"
    rule = deny["spec"]["matchConstraints"]["resourceRules"][0]
    assert rule["resources"] == ["pods"] and rule["operations"] == ["CREATE"]
    assert "virtual-kubelet.io/provider" in deny["spec"]["matchConditions"][0]["expression"]


def test_profiles_share_names_and_differ_in_rules() -> None:
    v1, v2 = policy_manifests("aci-v1"), policy_manifests("aci-v2")
    assert [m["metadata"]["name"] for m in v1] == [m["metadata"]["name"] for m in v2]
    assert {m["metadata"]["annotations"]["sandbox/profile"] for m in v2} == {"aci-v2"}

    def ids(manifests: list[dict[str, Any]]) -> set[str]:
        return {
            re.match(r"\[aci:([\w-]+)\]", v["message"]).group(1)  # type: ignore[union-attr]
            for m in manifests[::2]
            for v in m["spec"]["validations"]
        }

    only_v1 = {"no-init-containers", "no-host-aliases", "no-lifecycle-hooks", "no-xcom-sidecar"}
    quota = {"cpu-max", "memory-max", "max-containers", "max-volumes"}
    assert only_v1 | quota <= ids(v1)
    assert not only_v1 & ids(v2) and quota <= ids(v2)
    assert "init-container-fields" in ids(v2) - ids(v1)


@pytest.mark.parametrize("profile", PROFILES)
def test_cluster_and_lint_use_the_same_expressions(profile: str) -> None:
    rules = {r.text: r for r in load_rules().for_profile(profile)}
    rendered = [v for m in policy_manifests(profile)[::2] for v in m["spec"]["validations"]]
    assert len(rendered) == len(rules)
    for validation in rendered:
        assert rules[validation["message"]].expression == validation["expression"]


def test_rules_are_well_formed() -> None:
    rule_set = load_rules()
    for rule in rule_set.rules:
        assert "\n" not in rule.message and ": " in rule.message, rule.id  # limit, then the fix
        assert rule.doc.startswith("https://"), rule.id
        called = set(re.findall(r"([A-Za-z_]\w*)\s*\(", rule.expression))
        assert called <= K8S_130_FUNCTIONS, (rule.id, called - K8S_130_FUNCTIONS)


def test_every_rule_is_documented(repo: Path) -> None:
    page = (repo / "docs" / "aci-rules.md").read_text()
    for rule in load_rules().rules:
        assert f"`{rule.id}`" in page, rule.id


def test_a_broken_rule_file_is_a_config_error() -> None:
    raw = {"match": {"name": "m", "expression": "true"}, "rules": [
        {"id": "x", "profiles": ["aci-v9"], "severity": "deny", "expression": "true", "message": "m", "doc": "d"},
    ]}
    with pytest.raises(ConfigError, match="unknown profiles"):
        parse_rules(raw)
    raw["rules"][0]["profiles"] = ["aci-v1"]
    raw["rules"].append(dict(raw["rules"][0]))
    with pytest.raises(ConfigError, match="repeated"):
        parse_rules(raw)
    with pytest.raises(ConfigError, match="malformed"):
        parse_rules({"rules": []})


TOLERATION = {"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}


@pytest.mark.parametrize(
    ("tolerations", "matched"),
    [
        ([TOLERATION], True),
        ([{"key": "virtual-kubelet.io/provider", "operator": "Exists"}], True),
        ([{"key": "virtual-kubelet.io/provider", "operator": "Equal", "value": "azure"}], True),
        ([{"key": "virtual-kubelet.io/provider", "value": "azure", "effect": "NoSchedule"}], True),
        ([{"operator": "Exists"}], True),  # tolerates every taint
        ([{"key": "virtual-kubelet.io/provider", "operator": "Equal", "value": "aws"}], False),
        ([{"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoExecute"}], False),
        ([{"key": "other", "operator": "Exists"}], False),
        ([], False),
        (None, False),
    ],
)
@pytest.mark.parametrize("profile", PROFILES)
def test_match_condition_selects_pods_tolerating_the_virtual_node(
    tolerations: list[dict[str, str]] | None, matched: bool, profile: str, repo: Path
) -> None:
    """The policy looks at exactly the pods that tolerate the taint of the profile's virtual
    node, as placement (Kubernetes' ToleratesTaint) decides it."""
    from sandbox.config import load_settings
    from sandbox.core.kind_config import declared_nodes
    from sandbox.core.placement import tolerates

    spec: dict[str, Any] = {"containers": [{"name": "base", "image": "busybox:1.36", "args": ["x"]}]}
    if tolerations is not None:
        spec["tolerations"] = tolerations
    pod = {"apiVersion": "v1", "kind": "Pod", "spec": spec}
    (virtual,) = [n for n in declared_nodes(load_settings(repo, environ={}), profile=profile) if n.is_virtual_node]
    taint = next(t for t in virtual.taints if t.key == "virtual-kubelet.io/provider")
    assert tolerates(tolerations or [], taint) is matched
    assert bool(evaluate(load_rules().match_expression, activation({"object": pod}))) is matched
    verdict = check_pod(pod, profile)
    assert verdict.matched is matched
    assert [r.id for r in verdict.violations] == (["command-with-args"] if matched else [])


def test_server_defaulted_fields_do_not_trip_rules() -> None:
    """The API server defaults fields before admission; rules must not fire on the defaults."""
    pod = {
        "spec": {
            "tolerations": [TOLERATION],
            "securityContext": {},
            "hostNetwork": False,
            "containers": [{
                "name": "base", "image": "python:3.11-slim", "imagePullPolicy": "IfNotPresent",
                "command": ["python"], "args": ["-c", "1"],
                "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}},
                "terminationMessagePath": "/dev/termination-log",
            }],
            "volumes": [{"name": "kube-api-access", "projected": {"sources": []}}],
        }
    }
    verdict = check_pod(pod, "aci-v1")
    assert verdict.matched and not verdict.violations and not verdict.warnings and not verdict.errors
