"""kind-config.yaml: the real file passes; each way of breaking it is one clear ConfigError."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from sandbox.config import load_settings
from sandbox.core.kind_config import (
    CONTROL_PLANE_TAINT,
    PROFILE_LABEL_KEYS,
    VIRTUAL_NODE_KINDS,
    VIRTUAL_NODE_TAINT,
    declared_nodes,
    kind_of_labels,
    kubelet_refuses,
    load_kind_config,
    node_names,
    parse_kind_config,
    render_kind_config,
)
from sandbox.core.tools import TOOLS
from sandbox.errors import ConfigError
from support import AKS_NODE_SELECTOR, AKS_V2_NODE_SELECTOR


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


def test_each_profile_splits_its_labels_by_who_may_set_them() -> None:
    for kind in VIRTUAL_NODE_KINDS.values():
        # kubelet's --node-labels takes these at registration; `up` sets the rest through the API.
        assert not any(kubelet_refuses(k) for k in kind.kind_labels), kind.profile
        assert kind.kind_labels["type"] == "virtual-kubelet"
        assert any(kubelet_refuses(k) for k in kind.api_labels) and kind.api_labels["kubernetes.io/role"] == "agent"


def test_each_profile_is_the_virtual_node_upstream_documents() -> None:
    """Against the selectors the upstream docs give (restated in tests/support.py): the AKS v1
    docs' selector matches the v1 node; the v2 README's selector matches only the v2 node."""
    v1, v2 = VIRTUAL_NODE_KINDS["aci-v1"], VIRTUAL_NODE_KINDS["aci-v2"]
    assert AKS_NODE_SELECTOR.items() <= v1.labels.items()
    assert AKS_V2_NODE_SELECTOR.items() <= v2.labels.items()
    assert not AKS_V2_NODE_SELECTOR.items() <= v1.labels.items()
    assert (v1.max_pods, v2.max_pods) == (None, 200)  # v2: "Each virtual node supports 200 pods"
    assert kind_of_labels(v1.labels) is v1 and kind_of_labels(v2.labels) is v2
    assert kind_of_labels({**v2.labels, "alpha.service-controller.kubernetes.io/exclude-balancer": "true"}) is None
    assert kind_of_labels({"type": "virtual-kubelet"}) is None
    assert PROFILE_LABEL_KEYS >= {"virtualization", "kubernetes.io/role", "type"}


@pytest.mark.parametrize("profile", ["aci-v1", "aci-v2"])
def test_rendered_config_carries_the_profiles_labels_and_capacity(repo: Path, profile: str) -> None:
    source = (repo / "kind-config.yaml").read_text()
    rendered = yaml.safe_load(render_kind_config(source, profile))
    original = yaml.safe_load(source)
    kind = VIRTUAL_NODE_KINDS[profile]
    control_plane, worker, virtual = rendered["nodes"]
    assert [control_plane, worker] == original["nodes"][:2]  # only the virtual node changes
    assert virtual["labels"] == dict(kind.kind_labels)
    patches = [yaml.safe_load(p) for p in virtual["kubeadmConfigPatches"]]
    assert patches[0] == yaml.safe_load(original["nodes"][2]["kubeadmConfigPatches"][0])  # the taint
    extra_args = [p["nodeRegistration"]["kubeletExtraArgs"] for p in patches[1:]]
    # Unversioned, map form: kind converts and merges it by name into its v1beta4 list.
    assert all("apiVersion" not in p and p["kind"] == "JoinConfiguration" for p in patches)
    assert extra_args == ([{"max-pods": "200"}] if profile == "aci-v2" else [])
    # Still the same cluster for kind: node count, roles, images.
    assert [(n["role"], n["image"]) for n in rendered["nodes"]] == [(n["role"], n["image"]) for n in original["nodes"]]


def test_a_label_the_profile_owns_is_refused_in_kind_config(project: Path) -> None:
    path = edit(project, lambda d: d["nodes"][2]["labels"].update({"virtualization": "virtualnode2"}))
    with pytest.raises(ConfigError, match="sets virtualization, which the profile decides") as info:
        load_kind_config(path)
    assert "aci-v2" in (info.value.hint or "")
    rendered = render_kind_config((project / "kind-config.yaml").read_text(), "aci-v2")
    with pytest.raises(ConfigError):  # the rendered file is kind's, not a kind-config.yaml
        parse_kind_config(rendered, path)


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
    assert VIRTUAL_NODE_KINDS["aci-v1"].labels.items() <= virtual.labels.items()
    assert "virtualization" not in virtual.labels and virtual.pods_capacity is None
    assert virtual.labels["kubernetes.io/hostname"] == "demo-worker2"
    assert virtual.taints == (VIRTUAL_NODE_TAINT,)
    assert nodes["demo-control-plane"].taints == (CONTROL_PLANE_TAINT,)
    assert nodes["demo-worker"].taints == ()
    assert "type" not in nodes["demo-worker"].labels
    assert not any(n.is_virtual_node for name, n in nodes.items() if name != "demo-worker2")


def test_declared_nodes_follow_the_profile(project: Path) -> None:
    settings = load_settings(project, environ={"SANDBOX_PROFILE": "aci-v2"})
    *ordinary, virtual = declared_nodes(settings)
    assert virtual.labels["virtualization"] == "virtualnode2" and virtual.pods_capacity == 200
    assert "alpha.service-controller.kubernetes.io/exclude-balancer" not in virtual.labels
    assert virtual.taints == (VIRTUAL_NODE_TAINT,)
    assert all(n.pods_capacity is None and "virtualization" not in n.labels for n in ordinary)
    # An explicit profile wins over the settings' (lint --profile).
    (_, _, v1) = declared_nodes(settings, profile="aci-v1")
    assert "virtualization" not in v1.labels
