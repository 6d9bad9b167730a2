"""kind-config.yaml: the real file passes; each way of breaking it is one clear ConfigError."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from sandbox.config import load_settings
from sandbox.core.kind_config import (
    CONTROL_PLANE_TAINT,
    POST_CREATE_LABELS,
    VIRTUAL_NODE_LABELS,
    VIRTUAL_NODE_TAINT,
    declared_nodes,
    kubelet_refuses,
    load_kind_config,
    node_names,
)
from sandbox.core.tools import TOOLS
from sandbox.errors import ConfigError


@pytest.fixture
def project(tmp_path: Path, repo: Path) -> Path:
    (tmp_path / "kind-config.yaml").write_text((repo / "kind-config.yaml").read_text())
    return tmp_path


def edit(project: Path, change) -> Path:
    path = project / "kind-config.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_shipped_config_passes_and_has_one_virtual_node(repo: Path) -> None:
    config = load_kind_config(repo / "kind-config.yaml")
    assert [n.role for n in config.nodes] == ["control-plane", "worker", "worker"]
    (virtual,) = [n for n in config.nodes if n.is_virtual_node]
    assert virtual.labels == {"type": "virtual-kubelet"}
    assert virtual.join_taints == (VIRTUAL_NODE_TAINT,)


def test_every_node_image_is_pinned_by_digest_to_one_image(repo: Path) -> None:
    config = load_kind_config(repo / "kind-config.yaml")
    images = {n.image for n in config.nodes}
    assert len(images) == 1
    (image,) = images
    assert re.fullmatch(r"kindest/node:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}", image), image
    # kubectl's pin stays within one minor version of the node image's Kubernetes.
    node_minor = int(image.split(":v")[1].split(".")[1])
    kubectl_minor = int(TOOLS["kubectl"].version.split(".")[1])
    assert abs(node_minor - kubectl_minor) <= 1


def test_broken_yaml_is_one_config_error(project: Path) -> None:
    path = project / "kind-config.yaml"
    path.write_text(path.read_text() + "\n  - role: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_kind_config(path)
    assert info.value.hint and "kind-config.yaml" in info.value.hint
    assert info.value.exit_code == 2


def test_not_a_kind_cluster_config(project: Path) -> None:
    path = project / "kind-config.yaml"
    path.write_text("apiVersion: v1\nkind: Pod\n")
    with pytest.raises(ConfigError, match="not a kind cluster config"):
        load_kind_config(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_kind_config(tmp_path / "kind-config.yaml")


def test_missing_virtual_node(project: Path) -> None:
    path = edit(project, lambda d: d["nodes"][2].pop("labels"))
    with pytest.raises(ConfigError, match="no virtual node"):
        load_kind_config(path)


def test_missing_taint(project: Path) -> None:
    path = edit(project, lambda d: d["nodes"][2].pop("kubeadmConfigPatches"))
    with pytest.raises(
        ConfigError, match="lacks the taint virtual-kubelet.io/provider=azure:NoSchedule"
    ):
        load_kind_config(path)


def test_wrong_taint_effect_is_a_missing_taint(project: Path) -> None:
    def change(d):
        d["nodes"][2]["kubeadmConfigPatches"] = [
            "kind: JoinConfiguration\nnodeRegistration:\n  taints:\n"
            "  - {key: virtual-kubelet.io/provider, value: azure, effect: PreferNoSchedule}\n"
        ]

    with pytest.raises(ConfigError, match="lacks the taint"):
        load_kind_config(edit(project, change))


def test_a_label_kubelet_refuses_is_caught_before_kind_hangs(project: Path) -> None:
    path = edit(project, lambda d: d["nodes"][2]["labels"].update({"kubernetes.io/role": "agent"}))
    with pytest.raises(ConfigError, match="kubernetes.io/role") as info:
        load_kind_config(path)
    assert "Joining worker nodes" in info.value.message


@pytest.mark.parametrize(
    ("label", "refused"),
    [
        ("type", False),
        ("kubernetes.io/role", True),
        ("alpha.service-controller.kubernetes.io/exclude-balancer", True),
        ("node-role.kubernetes.io/worker", True),
        ("kubernetes.io/os", False),
        ("node.kubernetes.io/exclude-from-external-load-balancers", False),
        ("example.com/team", False),
        ("foo.k8s.io/x", True),
    ],
)
def test_kubelet_refuses(label: str, refused: bool) -> None:
    assert kubelet_refuses(label) is refused


def test_post_create_labels_are_exactly_the_ones_kubelet_would_refuse_or_lb_exclusions() -> None:
    assert (
        POST_CREATE_LABELS["kubernetes.io/role"] == VIRTUAL_NODE_LABELS["kubernetes.io/role"] == "agent"
    )
    assert all(kubelet_refuses(k) or k.startswith("node.kubernetes.io/") for k in POST_CREATE_LABELS)


def test_kind_node_names_follow_kinds_per_role_counters() -> None:
    roles = ["control-plane", "worker", "control-plane", "worker", "worker"]
    assert node_names("c", roles) == [
        "c-control-plane",
        "c-worker",
        "c-control-plane2",
        "c-worker2",
        "c-worker3",
    ]


def test_declared_nodes_after_up(project: Path) -> None:
    settings = load_settings(project, environ={"SANDBOX_NAME": "demo"})
    nodes = {n.name: n for n in declared_nodes(settings)}
    assert list(nodes) == ["demo-control-plane", "demo-worker", "demo-worker2"]
    virtual = nodes["demo-worker2"]
    assert virtual.is_virtual_node and virtual.role == "worker"
    assert VIRTUAL_NODE_LABELS.items() <= virtual.labels.items()
    assert POST_CREATE_LABELS.items() <= virtual.labels.items()
    assert virtual.labels["kubernetes.io/hostname"] == "demo-worker2"
    assert virtual.taints == (VIRTUAL_NODE_TAINT,)
    assert nodes["demo-control-plane"].taints == (CONTROL_PLANE_TAINT,)
    assert nodes["demo-worker"].taints == ()
    assert "type" not in nodes["demo-worker"].labels
    assert not any(n.is_virtual_node for name, n in nodes.items() if name != "demo-worker2")
