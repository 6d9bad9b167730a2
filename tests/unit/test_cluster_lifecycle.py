"""Cluster orchestration with the recording kind runner and FakeKube: exact commands, idempotency,
resume after an interrupted create, foreign clusters left alone, virtual-node verification."""

from __future__ import annotations

import dataclasses
import json
import stat
from pathlib import Path

import pytest
import yaml
from fakes import FakeKube, RecordingRunner, fail, ok

from sandbox.adapters.kind import KindCli
from sandbox.config import load_settings
from sandbox.core import cluster
from sandbox.core.cluster import (
    cluster_status,
    delete_cluster,
    ensure_cluster,
    ensure_virtual_node,
    verify_nodes,
)
from sandbox.core.kind_config import VIRTUAL_NODE_KINDS, VIRTUAL_NODE_TAINT, declared_nodes
from sandbox.errors import ClusterError, ConfigError, KubeApiError, ToolMissing
from sandbox.progress import SilentReporter
from sandbox.state import StateDir

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
KUBECONFIG = (FIXTURES / "kube" / "kubeconfig-kind.yaml").read_text()
NODES = (FIXTURES / "kind" / "get-nodes.txt").read_text()


@pytest.fixture
def settings(tmp_path: Path, repo: Path):
    (tmp_path / "kind-config.yaml").write_text((repo / "kind-config.yaml").read_text())
    return load_settings(tmp_path, environ={})


@pytest.fixture
def state(settings) -> StateDir:
    return StateDir(settings.state_dir)


def kind_with(runner: RecordingRunner) -> KindCli:
    return KindCli(runner=runner)


def create_line(settings, state) -> str:
    return (
        f"kind create cluster --name sandbox --config {state.rendered_kind_config} --wait 300s "
        f"--kubeconfig {state.admin_kubeconfig}"
    )


def test_fresh_create_writes_a_private_admin_kubeconfig_and_never_the_users(settings, state) -> None:
    runner = RecordingRunner(
        {
            r"get clusters": ok(""),
            r"create cluster": ok("Creating cluster ...\n"),
            r"get kubeconfig": ok(KUBECONFIG),
        }
    )
    reporter = SilentReporter()
    ensure_cluster(settings, kind_with(runner), state, reporter)
    assert runner.lines == [
        "kind get clusters",
        create_line(settings, state),
        "kind get kubeconfig --name sandbox",
    ]
    assert runner.calls[1].streamed and reporter.lines == ["Creating cluster ..."]
    assert reporter.steps == ["create kind cluster sandbox"]
    assert state.admin_kubeconfig.read_text() == KUBECONFIG
    assert stat.S_IMODE(state.admin_kubeconfig.stat().st_mode) == 0o600
    assert cluster.read_cluster_record(state).state == "created"


def test_second_up_only_verifies(settings, state) -> None:
    first = RecordingRunner({r"get clusters": ok(""), r"get kubeconfig": ok(KUBECONFIG)})
    ensure_cluster(settings, kind_with(first), state, SilentReporter())
    again = RecordingRunner(
        {r"get clusters": ok("sandbox\n"), r"get nodes": ok(NODES), r"get kubeconfig": ok(KUBECONFIG)}
    )
    ensure_cluster(settings, kind_with(again), state, SilentReporter())
    assert again.lines == [
        "kind get clusters",
        "kind get nodes --name sandbox",
        "kind get kubeconfig --name sandbox",
    ]


def test_a_cluster_sandbox_did_not_create_is_refused_and_untouched(settings, state) -> None:
    runner = RecordingRunner({r"get clusters": ok("sandbox\n")})
    with pytest.raises(ClusterError, match="not created by this sandbox") as info:
        ensure_cluster(settings, kind_with(runner), state, SilentReporter())
    assert "kind delete cluster --name sandbox" in (info.value.hint or "")
    assert runner.lines == ["kind get clusters"]
    with pytest.raises(ClusterError, match="not created by this sandbox"):
        delete_cluster(settings, kind_with(runner))
    assert not any("delete" in line for line in runner.lines)


def test_ctrl_c_during_create_resumes_by_recreating(settings, state) -> None:
    def interrupted(argv):
        raise KeyboardInterrupt

    runner = RecordingRunner({r"get clusters": ok(""), r"create cluster": interrupted})
    with pytest.raises(KeyboardInterrupt):
        ensure_cluster(settings, kind_with(runner), state, SilentReporter())
    assert cluster.read_cluster_record(state).state == "creating"
    # kind left a half-made cluster behind; it is ours, so the next `up` deletes and recreates it.
    resume = RecordingRunner({r"get clusters": ok("sandbox\n"), r"get kubeconfig": ok(KUBECONFIG)})
    reporter = SilentReporter()
    ensure_cluster(settings, kind_with(resume), state, reporter)
    assert resume.lines == [
        "kind get clusters",
        f"kind delete cluster --name sandbox --kubeconfig {state.admin_kubeconfig}",
        create_line(settings, state),
        "kind get kubeconfig --name sandbox",
    ]
    assert "interrupted" in reporter.messages[0]
    assert cluster.read_cluster_record(state).state == "created"


def test_a_cluster_with_missing_nodes_is_recreated(settings, state) -> None:
    ensure_cluster(
        settings, kind_with(RecordingRunner({r"get clusters": ok("")})), state, SilentReporter()
    )
    runner = RecordingRunner(
        {r"get clusters": ok("sandbox\n"), r"get nodes": ok("sandbox-control-plane\n")}
    )
    ensure_cluster(settings, kind_with(runner), state, SilentReporter())
    assert any(line.startswith("kind delete cluster") for line in runner.lines)
    assert any(line.startswith("kind create cluster") for line in runner.lines)


def test_an_edited_config_is_reported_not_applied_behind_the_users_back(settings, state) -> None:
    ensure_cluster(
        settings, kind_with(RecordingRunner({r"get clusters": ok("")})), state, SilentReporter()
    )
    settings.kind_config.write_text(settings.kind_config.read_text() + "\n# tweak\n")
    runner = RecordingRunner(
        {r"get clusters": ok("sandbox\n"), r"get nodes": ok("sandbox-control-plane\n")}
    )
    reporter = SilentReporter()
    ensure_cluster(settings, kind_with(runner), state, reporter)
    assert not any("create" in line or "delete" in line for line in runner.lines)
    assert "kind-config.yaml changed" in reporter.messages[0]


def test_a_failed_create_is_one_error_and_the_next_up_retries(settings, state) -> None:
    runner = RecordingRunner(
        {
            r"get clusters": ok(""),
            r"create cluster": fail("ERROR: failed to create cluster: node(s) already exist"),
        }
    )
    with pytest.raises(
        ClusterError, match="kind could not create cluster sandbox: ERROR: failed"
    ) as info:
        ensure_cluster(settings, kind_with(runner), state, SilentReporter())
    assert "sandbox up" in (info.value.hint or "")


def test_an_invalid_config_stops_before_any_kind_command(settings, state) -> None:
    settings.kind_config.write_text(
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n"
    )
    runner = RecordingRunner()
    with pytest.raises(ConfigError, match="no virtual node"):
        ensure_cluster(settings, kind_with(runner), state, SilentReporter())
    assert runner.calls == []


def test_stopped_nodes_give_a_hint(settings, state) -> None:
    ensure_cluster(
        settings, kind_with(RecordingRunner({r"get clusters": ok("")})), state, SilentReporter()
    )
    runner = RecordingRunner(
        {
            r"get clusters": ok("sandbox\n"),
            r"get nodes": ok(NODES),
            r"get kubeconfig": fail("ERROR: container is not running"),
        }
    )
    with pytest.raises(ClusterError, match="cannot read the kubeconfig") as info:
        ensure_cluster(settings, kind_with(runner), state, SilentReporter())
    assert "docker start sandbox-control-plane" in (info.value.hint or "")


def test_ensure_virtual_node_labels_only_the_virtual_node_then_verifies(settings) -> None:
    kube = FakeKube.from_specs(declared_nodes(settings))
    ensure_virtual_node(settings, kube, SilentReporter())
    assert kube.writes() == [("PATCH", "Node sandbox-worker2")]
    labels = kube.nodes_by_name["sandbox-worker2"].labels
    assert VIRTUAL_NODE_KINDS["aci-v1"].labels.items() <= labels.items()
    assert "kubernetes.io/role" not in kube.nodes_by_name["sandbox-worker"].labels
    # Idempotent: a second run only reads.
    kube.requests.clear()
    ensure_virtual_node(settings, kube, SilentReporter())
    assert kube.writes() == []


def test_ensure_virtual_node_waits_for_ready(settings) -> None:
    kube = FakeKube.from_specs(declared_nodes(settings), ready_after_reads=1)
    ensure_virtual_node(settings, kube, SilentReporter())
    assert kube.requests.count(("GET", "nodes")) >= 2


def test_a_missing_taint_is_named(settings) -> None:
    kube = FakeKube.from_specs(declared_nodes(settings))
    kube.nodes_by_name["sandbox-worker2"].taints.clear()
    with pytest.raises(
        ClusterError,
        match="virtual node sandbox-worker2 lacks taint virtual-kubelet.io/provider=azure:NoSchedule",
    ) as info:
        ensure_virtual_node(settings, kube, SilentReporter())
    assert "down --purge" in (info.value.hint or "")


def test_a_wrong_label_value_and_a_stray_taint_are_named(settings) -> None:
    specs = declared_nodes(settings)
    kube = FakeKube.from_specs(specs, as_created_by_kind=False)
    kube.nodes_by_name["sandbox-worker2"].labels["type"] = "vm"
    kube.nodes_by_name["sandbox-worker"].taints.append(VIRTUAL_NODE_TAINT)
    problems = verify_nodes(specs, kube.nodes())
    assert problems == [
        "node sandbox-worker carries the virtual-node taint virtual-kubelet.io/provider but is not the virtual node",
        "virtual node sandbox-worker2 has label type=vm, expected virtual-kubelet",
    ]


def test_labelling_a_node_that_does_not_exist_is_a_404() -> None:
    with pytest.raises(KubeApiError) as info:
        FakeKube().label_node("nope", {"a": "b"})
    assert info.value.status == 404


def test_status_of_an_absent_cluster_does_not_raise(settings) -> None:
    status = cluster_status(settings, kind_with(RecordingRunner({r"get clusters": ok("")})), None)
    assert not status.exists and not status.ok
    assert "does not exist" in status.problems[0]

    def missing(argv):
        raise ToolMissing("kind")

    status = cluster_status(settings, kind_with(RecordingRunner({r"get clusters": missing})), None)
    assert "kind" in status.problems[0] and not status.exists


def test_status_of_a_healthy_cluster(settings, state) -> None:
    ensure_cluster(
        settings, kind_with(RecordingRunner({r"get clusters": ok("")})), state, SilentReporter()
    )
    kube = FakeKube.from_specs(declared_nodes(settings), as_created_by_kind=False)
    status = cluster_status(
        settings, kind_with(RecordingRunner({r"get clusters": ok("sandbox\n")})), kube
    )
    assert status.ok, status.problems
    virtual = [n for n in status.nodes if n.is_virtual_node]
    assert [n.name for n in virtual] == ["sandbox-worker2"]
    assert virtual[0].taints == ("virtual-kubelet.io/provider=azure:NoSchedule",)
    assert json.loads(json.dumps(status.to_json()))["ok"] is True


def test_status_reports_an_unreachable_api_and_unlabelled_node(settings, state) -> None:
    ensure_cluster(
        settings, kind_with(RecordingRunner({r"get clusters": ok("")})), state, SilentReporter()
    )
    kind = kind_with(RecordingRunner({r"get clusters": ok("sandbox\n")}))
    status = cluster_status(settings, kind, FakeKube(unreachable=True))
    assert not status.ok and "cannot reach" in status.problems[0]
    status = cluster_status(settings, kind, FakeKube.from_specs(declared_nodes(settings)))
    assert not status.virtual_node_verified
    assert "virtual node sandbox-worker2 lacks label kubernetes.io/role=agent" in status.problems
    status = cluster_status(settings, kind, None)
    assert "no admin kubeconfig" in status.problems[0]


def test_delete_is_idempotent_and_forgets_the_record(settings, state) -> None:
    ensure_cluster(
        settings,
        kind_with(RecordingRunner({r"get clusters": ok(""), r"get kubeconfig": ok(KUBECONFIG)})),
        state,
        SilentReporter(),
    )
    runner = RecordingRunner({r"get clusters": ok("sandbox\n")})
    delete_cluster(settings, kind_with(runner))
    assert runner.lines == [
        "kind get clusters",
        f"kind delete cluster --name sandbox --kubeconfig {state.admin_kubeconfig}",
    ]
    assert cluster.read_cluster_record(state) is None and not state.admin_kubeconfig.exists()
    again = RecordingRunner({r"get clusters": ok("")})
    delete_cluster(settings, kind_with(again))
    assert again.lines == ["kind get clusters"]


def test_docker_down_is_one_error_with_a_hint(settings, state) -> None:
    runner = RecordingRunner(
        {
            r"get clusters": fail(
                'ERROR: failed to list clusters: command "docker ps -a" failed: Cannot connect to the Docker daemon'
            )
        }
    )
    with pytest.raises(ClusterError, match="cannot list kind clusters: .*Docker daemon") as info:
        ensure_cluster(settings, kind_with(runner), state, SilentReporter())
    assert "sandbox doctor" in (info.value.hint or "")
    with pytest.raises(ClusterError, match="cannot list kind clusters"):
        delete_cluster(settings, kind_with(runner))


def test_kind_missing_gets_a_hint(settings, state) -> None:
    def missing(argv):
        raise ToolMissing(argv[0])

    with pytest.raises(ToolMissing) as info:
        ensure_cluster(
            settings, kind_with(RecordingRunner({r"^kind": missing})), state, SilentReporter()
        )
    assert "downloads a pinned kind" in (info.value.hint or "")


def test_an_os_label_kubelet_stopped_setting_is_added_too(settings) -> None:
    kube = FakeKube.from_specs(declared_nodes(settings))
    del kube.nodes_by_name["sandbox-worker2"].labels["beta.kubernetes.io/os"]
    ensure_virtual_node(settings, kube, SilentReporter())
    assert kube.nodes_by_name["sandbox-worker2"].labels["beta.kubernetes.io/os"] == "linux"
    assert kube.writes() == [("PATCH", "Node sandbox-worker2")]


def _v2(settings):
    return dataclasses.replace(settings, profile="aci-v2")


def test_a_fresh_v2_cluster_is_created_from_the_rendered_config(settings, state) -> None:
    settings = _v2(settings)
    runner = RecordingRunner({r"get clusters": ok(""), r"get kubeconfig": ok(KUBECONFIG)})
    ensure_cluster(settings, kind_with(runner), state, SilentReporter())
    assert runner.lines[1] == create_line(settings, state)
    rendered = state.rendered_kind_config
    virtual = yaml.safe_load(rendered.read_text())["nodes"][2]
    assert virtual["labels"] == {"type": "virtual-kubelet", "virtualization": "virtualnode2"}
    assert "max-pods" in virtual["kubeadmConfigPatches"][-1]
    assert stat.S_IMODE(rendered.stat().st_mode) == 0o600
    # The record keeps the digest of the user's file: a profile switch is not a config edit.
    assert cluster.read_cluster_record(state).config_sha256 == cluster._config_digest(settings.kind_config)


def test_a_v2_node_as_kind_registers_it_is_labelled_and_verified(settings) -> None:
    settings = _v2(settings)
    kube = FakeKube.from_specs(declared_nodes(settings))
    assert kube.nodes_by_name["sandbox-worker2"].labels["virtualization"] == "virtualnode2"  # --node-labels
    reporter = SilentReporter()
    ensure_virtual_node(settings, kube, reporter)
    assert kube.writes() == [("PATCH", "Node sandbox-worker2")]
    assert VIRTUAL_NODE_KINDS["aci-v2"].labels.items() <= kube.nodes_by_name["sandbox-worker2"].labels.items()
    assert reporter.messages == []  # capacity 200 from --max-pods


def test_switching_v1_to_v2_relabels_through_the_api_and_names_the_capacity_fix(settings) -> None:
    kube = FakeKube.from_specs(declared_nodes(settings))  # created under aci-v1: 110 pods
    ensure_virtual_node(settings, kube, SilentReporter())
    kube.requests.clear()
    reporter = SilentReporter()
    ensure_virtual_node(_v2(settings), kube, reporter)
    assert kube.writes() == [("PATCH", "Node sandbox-worker2")]
    labels = kube.nodes_by_name["sandbox-worker2"].labels
    assert labels["virtualization"] == "virtualnode2" and labels["type"] == "virtual-kubelet"
    assert "alpha.service-controller.kubernetes.io/exclude-balancer" not in labels  # v1's only
    assert "node.kubernetes.io/exclude-from-external-load-balancers" not in labels
    assert verify_nodes(declared_nodes(_v2(settings)), kube.nodes()) == []
    (note,) = reporter.messages
    assert note.startswith("virtual node sandbox-worker2 takes 110 pods; a virtual node v2")
    assert "200" in note and "`sandbox down && sandbox up`" in note
    # And back: v1's labels return, v2's go; capacity is not part of v1.
    kube.requests.clear()
    reporter = SilentReporter()
    ensure_virtual_node(settings, kube, reporter)
    labels = kube.nodes_by_name["sandbox-worker2"].labels
    assert "virtualization" not in labels and labels["alpha.service-controller.kubernetes.io/exclude-balancer"] == "true"
    assert kube.writes() == [("PATCH", "Node sandbox-worker2")] and reporter.messages == []


def test_status_says_what_the_virtual_node_is_and_when_it_is_the_other_profiles(settings, state) -> None:
    ensure_cluster(settings, kind_with(RecordingRunner({r"get clusters": ok("")})), state, SilentReporter())
    kind = kind_with(RecordingRunner({r"get clusters": ok("sandbox\n")}))
    kube = FakeKube.from_specs(declared_nodes(settings), as_created_by_kind=False)
    status = cluster_status(settings, kind, kube)
    virtual = next(n for n in status.nodes if n.is_virtual_node)
    assert status.ok and virtual.kind == "virtual node v1 (virtual-kubelet azure-aci)"
    assert [n.kind for n in status.nodes if not n.is_virtual_node] == ["control-plane", "worker"]
    # The profile switched in sandbox.toml, `up` not run yet: one line saying what to do.
    status = cluster_status(_v2(settings), kind, kube)
    assert not status.ok
    assert status.problems == (
        "virtual node sandbox-worker2 is a virtual node v1 (virtual-kubelet azure-aci) but the "
        "profile is aci-v2: run `sandbox up` to relabel it",
    )
    # After `up` relabelled it: healthy, with a note about the capacity only a new cluster has.
    ensure_virtual_node(_v2(settings), kube, SilentReporter())
    status = cluster_status(_v2(settings), kind, kube)
    virtual = next(n for n in status.nodes if n.is_virtual_node)
    assert status.ok and virtual.kind.startswith("virtual node v2") and virtual.pods_capacity == 110
    assert len(status.notes) == 1 and "takes 110 pods" in status.notes[0]
    assert json.loads(json.dumps(status.to_json()))["notes"] == list(status.notes)


def test_sandbox_status_prints_the_node_kind_capacity_and_note(settings, state) -> None:
    from rich.console import Console

    from sandbox.cli.stack import _render_status
    from sandbox.core.stack_status import StackStatus

    ensure_cluster(settings, kind_with(RecordingRunner({r"get clusters": ok("")})), state, SilentReporter())
    kube = FakeKube.from_specs(declared_nodes(settings))
    ensure_virtual_node(_v2(settings), kube, SilentReporter())  # switched to v2 on a v1 cluster
    kind = kind_with(RecordingRunner({r"get clusters": ok("sandbox\n")}))
    result = StackStatus(
        mode="full", runtime="docker", cluster=cluster_status(_v2(settings), kind, kube), services=(),
        missing_services=(), api=None, api_error=None, url="http://127.0.0.1:8080", user="admin", password="pw",
        dag_import_errors=(("team/broken.py", "ModuleNotFoundError: No module named 'x'"),),
    )
    recorder = Console(record=True, width=400)
    _render_status(result, _v2(settings), recorder)
    text = recorder.export_text()
    assert "sandbox-worker2 (virtual node v2 (virtualnodesOnAzureContainerInstances))  pods: 110" in text
    assert "virtualization=virtualnode2" in text
    assert "note: virtual node sandbox-worker2 takes 110 pods" in text
    assert "sandbox-worker (worker)" in text
    assert "1 file(s) do not import" in text and "✗ team/broken.py: ModuleNotFoundError: No module named 'x'" in text
