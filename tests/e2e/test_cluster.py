"""Against the real kind cluster after `make up` (GitHub Actions): the virtual node looks like
AKS's, scheduling honours its taint, and Airflow's service account has exactly pod rights in the
task namespace. Uses kubectl with the admin kubeconfig in .sandbox/."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import AKS_NODE_SELECTOR, AKS_TOLERATIONS, REPO, can_i_argv, require

from sandbox.adapters.kube import parse_node
from sandbox.config import load_settings
from sandbox.core.cluster import verify_nodes
from sandbox.core.kind_config import declared_nodes
from sandbox.state import StateDir
from sandbox.waiting import NotReady, wait_until

SETTINGS = load_settings(REPO)

SA = f"system:serviceaccount:{SETTINGS.task_namespace}:{SETTINGS.service_account}"



@pytest.fixture(scope="module")
def namespace(kubectl) -> Iterator[str]:
    name = f"sandbox-e2e-{secrets.token_hex(3)}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_the_virtual_node_has_every_label_and_the_taint(kubectl) -> None:
    nodes = [
        parse_node(item) for item in json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"]
    ]
    assert verify_nodes(declared_nodes(SETTINGS), nodes) == []
    assert all(n.ready for n in nodes)


def pod(name: str, namespace: str, *, selector: dict | None, tolerations: list | None) -> dict:
    spec: dict[str, Any] = {
        "containers": [
            {"name": "pause", "image": "registry.k8s.io/pause:3.10", "imagePullPolicy": "IfNotPresent"}
        ],
        "terminationGracePeriodSeconds": 0,
    }
    if selector:
        spec["nodeSelector"] = selector
    if tolerations:
        spec["tolerations"] = tolerations
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def scheduling(kubectl, namespace: str, name: str) -> tuple[str, str]:
    """Wait until the scheduler decided: ("bound", node) or ("unschedulable", message)."""

    def decided() -> tuple[str, str]:
        obj = json.loads(kubectl("get", "pod", name, "-n", namespace, "-o", "json").stdout)
        if obj["spec"].get("nodeName"):
            return ("bound", obj["spec"]["nodeName"])
        for condition in obj.get("status", {}).get("conditions", []):
            if condition["type"] == "PodScheduled" and condition.get("reason") == "Unschedulable":
                return ("unschedulable", condition.get("message", ""))
        raise NotReady(
            f"pod {name} phase {obj.get('status', {}).get('phase')}, no scheduling decision yet"
        )

    return wait_until(decided, what=f"a scheduling decision for pod {name}", timeout=90, interval=1)


def virtual_node_name() -> str:
    (virtual,) = [n.name for n in declared_nodes(SETTINGS) if n.is_virtual_node]
    return virtual


def test_a_pod_with_the_aks_selector_and_tolerations_lands_on_the_virtual_node(
    kubectl, namespace
) -> None:
    manifest = pod("to-aci", namespace, selector=AKS_NODE_SELECTOR, tolerations=AKS_TOLERATIONS)
    kubectl("apply", "-f", "-", input=json.dumps(manifest))
    assert scheduling(kubectl, namespace, "to-aci") == ("bound", virtual_node_name())


def test_a_pod_without_the_toleration_never_lands_there(kubectl, namespace) -> None:
    targeted = pod("no-toleration", namespace, selector=AKS_NODE_SELECTOR, tolerations=None)
    kubectl("apply", "-f", "-", input=json.dumps(targeted))
    decision, message = scheduling(kubectl, namespace, "no-toleration")
    assert decision == "unschedulable" and "virtual-kubelet.io/provider" in message
    anywhere = pod("anywhere", namespace, selector=None, tolerations=None)
    kubectl("apply", "-f", "-", input=json.dumps(anywhere))
    decision, node = scheduling(kubectl, namespace, "anywhere")
    assert decision == "bound" and node != virtual_node_name()


@pytest.mark.parametrize(
    ("verb", "resource", "namespace", "allowed"),
    [
        ("create", "pods", SETTINGS.task_namespace, True),
        ("delete", "pods", SETTINGS.task_namespace, True),
        ("watch", "pods", SETTINGS.task_namespace, True),
        ("get", "pods/log", SETTINGS.task_namespace, True),
        ("create", "pods/exec", SETTINGS.task_namespace, True),
        ("create", "pods/attach", SETTINGS.task_namespace, False),  # proves --subresource is checked
        ("create", "pods/portforward", SETTINGS.task_namespace, False),
        ("create", "pods/log", SETTINGS.task_namespace, False),  # log is get-only
        ("list", "events", SETTINGS.task_namespace, True),
        ("list", "nodes", None, False),
        ("create", "pods", "kube-system", False),
        ("get", "secrets", SETTINGS.task_namespace, False),
        ("create", "roles", SETTINGS.task_namespace, False),
    ],
)
def test_the_airflow_service_account_is_least_privilege(
    kubectl, verb, resource, namespace, allowed
) -> None:
    result = kubectl(*can_i_argv(verb, resource, namespace=namespace, as_user=SA), check=False)
    assert result.stdout.strip() == ("yes" if allowed else "no"), result.stderr


def test_the_airflow_kubeconfig_is_private_and_internal() -> None:
    path: Path = StateDir(SETTINGS.state_dir).airflow_kubeconfig
    require(path.is_file(), f"no Airflow kubeconfig at {path}: run `make up` first")
    assert path.stat().st_mode & 0o077 == 0
    assert f"https://{SETTINGS.control_plane_host}:6443" in path.read_text()
