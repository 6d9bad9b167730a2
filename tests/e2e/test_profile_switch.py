"""Switching an existing cluster to virtual nodes v2 and back, for real (GitHub Actions, after
`make up` with the default profile aci-v1 and the sample runs).

`SANDBOX_PROFILE=aci-v2 sandbox up` on the running sandbox must turn the virtual node into a v2
node through the API (kubelet applied kind's --node-labels only when the node registered), apply
the v2 policy, give Airflow the v2 profile so the DAG helper aims pods at v2, and say in one line
that the pod capacity (kubelet's --max-pods, read when kubelet starts) needs a new cluster. A
task pod of a real DAG run then carries the v2 selector and runs on the virtual node. The module
ends with `sandbox up` under aci-v1, which must restore the v1 node, so later modules see the
sandbox as `make up` left it.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from support import AKS_V2_NODE_SELECTOR, AKS_V2_TOLERATIONS, REPO, require

from sandbox.adapters.kube import Node, parse_node
from sandbox.config import load_settings
from sandbox.core.cluster import verify_nodes
from sandbox.core.kind_config import VIRTUAL_NODE_KINDS, VIRTUAL_NODE_TAINT, declared_nodes, kind_of_labels
from sandbox.proc import run
from sandbox.state import StateDir
from sandbox.waiting import NotReady, wait_until

SETTINGS = load_settings(REPO)
STATE = StateDir(SETTINGS.state_dir)
SANDBOX = str(REPO / ".venv" / "bin" / "sandbox")
V2 = VIRTUAL_NODE_KINDS["aci-v2"]
DATE = "2021-12-02"  # not the samples' date: test_samples.py reads 2021-12-01's outputs


def sandbox(*args: str, profile: str, timeout: float = 1200) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SANDBOX_PROFILE"}
    env["SANDBOX_PROFILE"] = profile
    return subprocess.run(
        [SANDBOX, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env
    )


def said(result: subprocess.CompletedProcess) -> str:
    """Both streams, one line per message (progress wraps long lines on a narrow terminal)."""
    return " ".join((result.stdout + "\n" + result.stderr).split())


def live_nodes(kubectl) -> list[Node]:
    return [parse_node(i) for i in json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"]]


def the_virtual_node(kubectl) -> Node:
    (name,) = [n.name for n in declared_nodes(SETTINGS) if n.is_virtual_node]
    return next(n for n in live_nodes(kubectl) if n.name == name)


@pytest.fixture(scope="module")
def switched(kubectl) -> Iterator[subprocess.CompletedProcess]:
    require(STATE.compose_env_file.is_file(), "the sandbox is not up: run `make up` first")
    require(SETTINGS.profile == "aci-v1", f"this module starts from aci-v1, the project says {SETTINGS.profile}")
    before = the_virtual_node(kubectl)
    assert kind_of_labels(before.labels) is VIRTUAL_NODE_KINDS["aci-v1"], before.labels
    result = sandbox("up", profile="aci-v2")
    try:
        yield result
    finally:
        back = sandbox("up", profile="aci-v1")
        assert back.returncode == 0, said(back)[-3000:]
        restored = live_nodes(kubectl)
        assert verify_nodes(declared_nodes(SETTINGS, profile="aci-v1"), restored) == []
        assert "virtualization" not in the_virtual_node(kubectl).labels


def test_up_switches_the_profile_and_names_what_it_cannot_change(switched) -> None:
    assert switched.returncode == 0, said(switched)[-3000:]
    text = said(switched)
    # kind made the node with kubelet's default --max-pods; only a new cluster gets v2's 200.
    assert f"takes 110 pods; a {V2.title} takes 200" in text, text[-3000:]
    assert "`sandbox down && sandbox up` recreates the cluster" in text


def test_the_node_is_relabelled_as_a_v2_node_through_the_api(switched, kubectl) -> None:
    nodes = live_nodes(kubectl)
    assert verify_nodes(declared_nodes(SETTINGS, profile="aci-v2"), nodes) == []
    virtual = the_virtual_node(kubectl)
    assert kind_of_labels(virtual.labels) is V2, virtual.labels
    assert AKS_V2_NODE_SELECTOR.items() <= virtual.labels.items()
    assert virtual.pods_capacity == 110  # what kubelet reports until the node is recreated


def test_status_shows_a_v2_node_with_the_capacity_note(switched) -> None:
    result = sandbox("status", "--json", profile="aci-v2", timeout=120)
    data = json.loads(result.stdout)
    assert result.returncode == 0, data["problems"]
    (virtual,) = [n for n in data["cluster"]["nodes"] if n["is_virtual_node"]]
    assert virtual["kind"] == V2.title and virtual["pods_capacity"] == 110
    assert any("takes 110 pods" in note for note in data["cluster"]["notes"])


def test_the_cluster_applies_the_v2_policy(switched, kubectl) -> None:
    deny = json.loads(kubectl("get", "validatingadmissionpolicy", "sandbox-aci-deny", "-o", "json").stdout)
    assert deny["metadata"]["annotations"]["sandbox/profile"] == "aci-v2"
    pod = _pod("v2-init", selector=AKS_V2_NODE_SELECTOR)
    pod["spec"]["initContainers"] = [
        {"name": "setup", "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent", "command": ["true"]}
    ]
    dry = kubectl("create", "--dry-run=server", "-o", "name", "-f", "-", input=json.dumps(pod), check=False)
    assert dry.returncode == 0, dry.stderr  # aci-v1 refuses init containers, v2 runs them


def test_the_v2_documented_pod_is_scheduled_on_the_virtual_node(switched, kubectl) -> None:
    name = "v2-documented"
    kubectl("delete", "pod", name, "-n", SETTINGS.task_namespace, "--ignore-not-found", "--wait=true")
    kubectl("create", "-f", "-", input=json.dumps(_pod(name, selector=AKS_V2_NODE_SELECTOR)))
    try:
        assert _bound_node(kubectl, name) == the_virtual_node(kubectl).name
    finally:
        kubectl("delete", "pod", name, "-n", SETTINGS.task_namespace, "--wait=false", check=False)


def test_a_dag_run_under_v2_aims_its_pods_at_v2(switched, kubectl) -> None:
    """The DAG helper reads SANDBOX_PROFILE, which `up` rendered into Airflow's environment."""
    run = sandbox("run-dag", "recommend", "--date", DATE, "--no-logs", profile="aci-v2", timeout=SETTINGS.timeouts.run)
    assert run.returncode == 0, said(run)[-3000:]
    pods = json.loads(
        kubectl("get", "pods", "-n", SETTINGS.task_namespace, "-l", "dag_id=recommend", "-o", "json").stdout
    )["items"]
    ours = [p for p in pods if DATE in (p["spec"]["containers"][0].get("args") or [])]
    assert ours, [p["metadata"]["name"] for p in pods]
    node = the_virtual_node(kubectl).name
    for pod in ours:
        where = pod["metadata"]["name"]
        assert pod["spec"]["nodeSelector"] == AKS_V2_NODE_SELECTOR, where
        assert pod["spec"]["tolerations"][: len(AKS_V2_TOLERATIONS)] == AKS_V2_TOLERATIONS, where
        assert pod["spec"]["nodeName"] == node, where


def _pod(name: str, *, selector: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": SETTINGS.task_namespace},
        "spec": {
            "nodeSelector": selector,
            "tolerations": AKS_V2_TOLERATIONS,
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "base",
                "image": "registry.k8s.io/pause:3.10",
                "imagePullPolicy": "IfNotPresent",
                "command": ["/pause"],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
            }],
        },
    }


def _bound_node(kubectl, name: str) -> str:
    def decided() -> str:
        obj = json.loads(kubectl("get", "pod", name, "-n", SETTINGS.task_namespace, "-o", "json").stdout)
        if obj["spec"].get("nodeName"):
            return obj["spec"]["nodeName"]
        for condition in obj.get("status", {}).get("conditions", []):
            if condition["type"] == "PodScheduled" and condition.get("reason") == "Unschedulable":
                raise AssertionError(f"pod {name} is unschedulable: {condition.get('message')}")
        raise NotReady(f"pod {name}: no scheduling decision yet")

    return wait_until(decided, what=f"a scheduling decision for pod {name}", timeout=90, interval=1)


def test_kind_registers_a_fresh_v2_node_with_its_labels_and_200_pods(tmp_path) -> None:
    """What a new cluster under aci-v2 gets from its first registration, proved on a throwaway
    kind cluster made from the same rendered config `sandbox up` hands kind: the labels reach
    kubelet's --node-labels, and the unversioned max-pods patch is merged by kind into kubeadm's
    kubeletExtraArgs (kind pkg/internal/patch/kubeadm_merge.go), so kubelet reports 200 pods."""
    from sandbox.adapters.kind import KindCli
    from sandbox.core.kind_config import render_kind_config
    from sandbox.core.tools import find_tool

    kind_binary, kubectl_binary = find_tool("kind", SETTINGS), find_tool("kubectl", SETTINGS)
    require(kind_binary is not None and kubectl_binary is not None, "kind/kubectl missing (`make up` downloads them)")
    # The project's kind-config.yaml without the ordinary worker: the control plane and the
    # virtual node are all this needs, next to the running sandbox.
    source = yaml.safe_load(SETTINGS.kind_config.read_text())
    source["nodes"] = [n for n in source["nodes"] if n["role"] == "control-plane" or n.get("labels")]
    config = tmp_path / "kind-config.v2.yaml"
    config.write_text(render_kind_config(yaml.safe_dump(source), "aci-v2"))
    kubeconfig = tmp_path / "kubeconfig"
    kind, name = KindCli(str(kind_binary)), "sbx-v2-probe"
    try:
        kind.create(name, config, wait="300s", kubeconfig=kubeconfig, timeout=600)
        listed = run(
            [str(kubectl_binary), "--kubeconfig", str(kubeconfig), "get", "nodes", "-o", "json"], timeout=60
        )
        nodes = [parse_node(i) for i in json.loads(listed.stdout)["items"]]
        (node,) = [n for n in nodes if n.labels.get("type") == "virtual-kubelet"]
        assert node.pods_capacity == 200, node
        assert node.labels.get("virtualization") == "virtualnode2", node.labels
        assert VIRTUAL_NODE_TAINT in node.taints, node.taints
        assert [n.pods_capacity for n in nodes if n is not node] == [110]  # the control plane: kubelet's default
        # Only the labels kubelet refuses are missing, as right after any `kind create`.
        missing = {k for k, v in V2.labels.items() if node.labels.get(k) != v}
        assert missing == {"kubernetes.io/role"}, node.labels
    finally:
        kind.delete(name, kubeconfig=kubeconfig)
