"""The admission policy rendered from the rule set: schema-valid, one profile at a time, and
carrying exactly the expressions `sandbox lint` evaluates locally."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import celpy
import kubernetes_validate
import pytest
from lark import Token, Tree

from sandbox.config import PROFILES
from sandbox.core.cel_k8s import activation, evaluate
from sandbox.core.policy import check_pod, load_rules, parse_rules, policy_manifests
from sandbox.errors import ConfigError

# What the API server's CEL environment offers since Kubernetes 1.30 and the rules may call.
K8S_130_FUNCTIONS = {
    "has", "dyn", "size", "all", "exists", "map", "contains", "matches", "endsWith", "startsWith",
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


# --- the API server's type check of field selections ----------------------------------------
# kube-apiserver type-checks each validation against the matched kind's OpenAPI v3 schema and
# reports problems in status.typeChecking.expressionWarnings (tests/e2e/test_policy.py asserts
# there are none). What decides which fields CEL sees is SchemaDeclType in
# k8s.io/apiserver/pkg/cel/common/schemas.go: a schema with no `type` (and no
# x-kubernetes-int-or-string) gets no declaration, a map of such values gets none, and an object
# property without a declaration is dropped, so selecting it is "undefined field". Emulated below
# over the Kubernetes 1.37 definitions kubernetes-validate ships (the published OpenAPI v3).

DYN = "dyn"  # a value the checker types as dyn: any selection on it is deferred to run time


@cache
def _definitions() -> dict[str, Any]:
    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    path = root / f"v{kubernetes_validate.latest_version()}-local" / "_definitions.json"
    return json.loads(path.read_text())["$defs"]


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = _definitions()[schema["$ref"].rpartition("/")[2]]
    return schema


def _declared(schema: dict[str, Any]) -> Any:
    """The schema if SchemaDeclType gives it a CEL type, DYN for int-or-string, else None."""
    schema = _resolve(schema)
    if schema.get("x-kubernetes-int-or-string"):
        return DYN
    types = schema.get("type")
    kind = next((t for t in ([types] if isinstance(types, str) else types or []) if t != "null"), None)
    if kind == "array":
        return schema if "items" in schema and _declared(schema["items"]) is not None else None
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return schema if _declared(schema["additionalProperties"]) is not None else None
    return schema if kind in ("object", "string", "boolean", "number", "integer") else None


def _select(base: Any, field: str, problems: list[str]) -> Any:
    if base is None or base == DYN:
        return base
    schema = _declared(base.get("properties", {}).get(field, {}))
    if schema is None:
        problems.append(f"undefined field '{field}'")
    return schema


def _items(base: Any) -> Any:
    if base is None or base == DYN:
        return base
    schema = _resolve(base)
    inner = schema.get("items") or schema.get("additionalProperties")
    return _declared(inner) if isinstance(inner, dict) else None


def _arguments(node: Tree) -> list[Any]:
    lists = [c for c in node.children if isinstance(c, Tree) and c.data == "exprlist"]
    return lists[0].children if lists else []


def _variable(node: Any) -> str | None:
    """The name a macro binds (`c` in `containers.all(c, ...)`)."""
    tokens = [t for t in (node.scan_values(lambda v: isinstance(v, Token)) if isinstance(node, Tree) else [])]
    return str(tokens[0]) if len(tokens) == 1 else None


def _infer(node: Any, scope: dict[str, Any], problems: list[str]) -> Any:
    if not isinstance(node, Tree):
        return None
    if node.data == "ident":
        return scope.get(str(node.children[0]))
    if node.data == "member_dot":
        return _select(_infer(node.children[0], scope, problems), str(node.children[1]), problems)
    if node.data == "member_index":
        base = _infer(node.children[0], scope, problems)
        _infer(node.children[1], scope, problems)
        return _items(base)
    if node.data == "member_dot_arg":
        base = _infer(node.children[0], scope, problems)
        method, args = str(node.children[1]), _arguments(node)
        if method in ("all", "exists", "exists_one", "map", "filter") and args:
            inner = {**scope, _variable(args[0]) or "": _items(base)}
            for arg in args[1:]:
                _infer(arg, inner, problems)
            return None
        for arg in args:
            _infer(arg, scope, problems)
        return None
    if node.data == "ident_arg":
        for arg in _arguments(node):
            _infer(arg, scope, problems)
        return DYN if str(node.children[0]) == "dyn" else None
    results = [_infer(child, scope, problems) for child in node.children]
    return results[0] if len(node.children) == 1 else None


def type_check(expression: str) -> list[str]:
    """The "undefined field" problems the API server would report for `expression` over a Pod."""
    problems: list[str] = []
    _infer(celpy.Environment().compile(expression), {"object": _declared(_definitions()["io.k8s.api.core.v1.Pod"])}, problems)
    return problems


def test_quantity_has_no_cel_type_in_the_published_schema() -> None:
    """The upstream fact the rules work around: requests/limits are invisible to the checker."""
    resources = _declared(_definitions()["io.k8s.api.core.v1.ResourceRequirements"])
    assert _declared(_definitions()["io.k8s.apimachinery.pkg.api.resource.Quantity"]) is None
    assert _declared(resources["properties"]["requests"]) is None
    assert _declared(resources["properties"]["claims"]) is not None


def test_the_type_check_emulation_catches_hidden_and_misspelt_fields() -> None:
    assert type_check("object.spec.containers.all(c, !has(c.resources.requests))") == ["undefined field 'requests'"]
    assert type_check("object.spec.containers.all(c, c.resources.limits['cpu'] == '1')") == ["undefined field 'limits'"]
    assert type_check("object.spec.hostNetwork2") == ["undefined field 'hostNetwork2'"]
    assert type_check("object.spec.containers.all(c, has(dyn(c.resources).requests))") == []
    assert type_check("object.spec.volumes.all(v, has(v.csi) && 'shareName' in v.csi.volumeAttributes)") == []


@pytest.mark.parametrize("rule", load_rules().rules, ids=lambda r: f"{r.id}-{'-'.join(r.profiles)}")
def test_every_rule_type_checks_against_the_pod_schema(rule) -> None:
    assert type_check(rule.expression) == []


def test_the_match_condition_type_checks_against_the_pod_schema() -> None:
    assert type_check(load_rules().match_expression) == []


@pytest.mark.parametrize(
    ("resources", "cpu_ok"),
    [
        ({"requests": {"cpu": "4"}}, True),
        ({"requests": {"cpu": "4100m"}}, False),
        ({"limits": {"cpu": "5"}}, False),  # a limit alone counts as the request too
        ({"requests": {"cpu": "1"}, "limits": {"cpu": "4500m"}}, False),
        ({}, True),  # ACI's default 1 vCPU
    ],
)
def test_quota_rules_read_requests_and_limits_through_dyn(resources: dict[str, Any], cpu_ok: bool) -> None:
    """dyn() changes the static type only: the values still reach quantity() at run time."""
    (cpu_max,) = [r for r in load_rules().for_profile("aci-v1") if r.id == "cpu-max"]
    pod = {"spec": {"containers": [{"name": "base", "image": "x:1", "resources": resources}]}}
    assert bool(evaluate(cpu_max.expression, activation({"object": pod}))) is cpu_ok
