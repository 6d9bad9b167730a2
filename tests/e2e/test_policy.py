"""The ACI rules in the real API server (GitHub Actions, after `make up`): the admission policy
`sandbox up` applied refuses each violating pod with the rule's message, warns where lint warns,
accepts the clean twins, and a clean pod bound for the virtual node runs there.

The pods are the ones `sandbox lint` checks (tests/lint_dags, rendered by the real provider) and
the expectations are the same file the lint tests use (tests/lint_dags/expected.json), so lint
and cluster are held to one answer. Uses kubectl with the admin kubeconfig in .sandbox/;
`--dry-run=server` runs admission without creating the pods.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
from support import REPO

from sandbox.config import load_settings
from sandbox.core.kind_config import declared_nodes
from sandbox.core.policy import load_rules, policy_manifests
from sandbox.proc import Completed
from sandbox.waiting import NotReady, wait_until

SETTINGS = load_settings(REPO)

LINT_DAGS = REPO / "tests" / "lint_dags"


@pytest.fixture(scope="module")
def profile(kubectl) -> str:
    """The profile of the policy `sandbox up` applied (it must be this project's setting)."""
    deny = json.loads(kubectl("get", "validatingadmissionpolicy", "sandbox-aci-deny", "-o", "json").stdout)
    applied = deny["metadata"]["annotations"]["sandbox/profile"]
    assert applied == SETTINGS.profile
    return applied


@pytest.fixture(scope="module")
def rendered_pods() -> dict[str, dict[str, Any]]:
    """task_id -> pod dict, rendered by the provider exactly as `sandbox lint` renders them."""
    from airflow.dag_processing.dagbag import DagBag

    from sandbox.core.pod_render import render_pod

    bag = DagBag(dag_folder=LINT_DAGS, bundle_path=LINT_DAGS, load_op_links=False)
    return {task.task_id: render_pod(task) for task in bag.dags["aci_rules"].tasks}


def test_the_applied_policy_is_the_rendered_one_and_type_checks(kubectl, profile: str) -> None:
    for manifest in policy_manifests(profile):
        kind, name = manifest["kind"].lower(), manifest["metadata"]["name"]
        live = json.loads(kubectl("get", kind, name, "-o", "json").stdout)["spec"]
        if manifest["kind"] != "ValidatingAdmissionPolicy":
            assert live["policyName"] == manifest["spec"]["policyName"]
            assert live["validationActions"] == manifest["spec"]["validationActions"]
            continue
        for key in ("validations", "matchConditions", "failurePolicy"):
            assert live[key] == manifest["spec"][key], (name, key)

        def checked(live_name: str = name) -> dict[str, Any]:
            obj = json.loads(kubectl("get", "validatingadmissionpolicy", live_name, "-o", "json").stdout)
            status = obj.get("status") or {}
            if status.get("observedGeneration") != obj["metadata"]["generation"]:
                raise NotReady(f"status not observed yet: {status}")
            return status

        status = wait_until(checked, what=f"type checking of {name}", timeout=60, interval=1)
        # The API server type-checks every expression against the Pod's OpenAPI schema; a field
        # it cannot see (e.g. a map of Quantity, hence dyn() in aci_rules.yaml) is a warning here.
        warnings = (status.get("typeChecking") or {}).get("expressionWarnings")
        assert not warnings, f"{name}: type checking warnings: {json.dumps(warnings, indent=1)}"


def _expected(profile: str) -> dict[str, dict[str, Any]]:
    return json.loads((LINT_DAGS / "expected.json").read_text())[profile]


def _dry_run(kubectl, pod: dict[str, Any]) -> Completed:
    pod = json.loads(json.dumps(pod))
    pod["metadata"]["namespace"] = SETTINGS.task_namespace
    return kubectl("create", "--dry-run=server", "-o", "name", "-f", "-", input=json.dumps(pod), check=False)


def test_the_api_server_agrees_with_lint_on_every_rule_task(kubectl, profile, rendered_pods) -> None:
    texts = {r.id: r.text for r in load_rules().for_profile(profile)}
    disagreements = []
    for task_id, expected in _expected(profile).items():
        if task_id not in rendered_pods:
            continue  # placement cases: the scheduler's business, tested in test_cluster.py
        result = _dry_run(kubectl, rendered_pods[task_id])
        refused = result.returncode != 0
        if refused != bool(expected["violations"]):
            disagreements.append(f"{task_id}: refused={refused}: {result.stderr.strip()[-300:]}")
            continue
        for rule_id in expected["violations"]:
            if texts[rule_id] not in result.stderr:
                disagreements.append(f"{task_id}: no message for {rule_id}: {result.stderr.strip()[-300:]}")
        if not refused:
            warned = {rid for rid, text in texts.items() if text in result.stderr}
            if warned != set(expected["warnings"]):
                disagreements.append(f"{task_id}: warned {sorted(warned)}, lint warns {expected['warnings']}")
    assert not disagreements, "\n".join(disagreements)


def test_a_pod_without_the_toleration_is_not_checked(kubectl, profile, rendered_pods) -> None:
    pod = json.loads(json.dumps(rendered_pods["init_containers"]))
    pod["spec"]["tolerations"] = []
    pod["spec"]["nodeSelector"] = {}
    assert _dry_run(kubectl, pod).returncode == 0


def test_a_clean_pod_runs_on_the_virtual_node(kubectl, profile) -> None:
    (virtual,) = [n.name for n in declared_nodes(SETTINGS) if n.is_virtual_node]
    name = f"aci-clean-{secrets.token_hex(3)}"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": SETTINGS.task_namespace},
        "spec": {
            "restartPolicy": "Never",
            "nodeSelector": {"type": "virtual-kubelet"},
            "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{
                "name": "base",
                "image": "busybox:1.36",
                "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c"],
                "args": ["echo ran on the virtual node"],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
            }],
        },
    }
    created = kubectl("create", "-f", "-", input=json.dumps(pod), check=False)
    try:
        assert created.returncode == 0, created.stderr
        assert "[aci:" not in created.stderr  # no warning either

        def finished() -> dict[str, Any]:
            obj = json.loads(kubectl("get", "pod", name, "-n", SETTINGS.task_namespace, "-o", "json").stdout)
            phase = obj.get("status", {}).get("phase")
            if phase in ("Succeeded", "Failed"):
                return obj
            raise NotReady(f"phase {phase} on {obj['spec'].get('nodeName')}")

        obj = wait_until(finished, what=f"pod {name} to finish", timeout=240, interval=2)
        assert obj["spec"]["nodeName"] == virtual
        assert obj["status"]["phase"] == "Succeeded"
    finally:
        kubectl("delete", "pod", name, "-n", SETTINGS.task_namespace, "--wait=false", check=False)
