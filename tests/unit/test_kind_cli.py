"""The kind adapter: exact argv from the pure builders; KindCli runs them through the runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import RecordingRunner, fail, ok

from sandbox.adapters import kind
from sandbox.adapters.kind import KindCli
from sandbox.errors import CommandFailed

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "kind"


def test_argv_builders() -> None:
    assert kind.clusters_argv() == ["kind", "get", "clusters"]
    assert kind.create_argv("sb", Path("/p/kind-config.yaml"), wait="300s", kubeconfig=Path("/p/.sandbox/kc")) == [
        "kind", "create", "cluster", "--name", "sb", "--config", "/p/kind-config.yaml", "--wait", "300s",
        "--kubeconfig", "/p/.sandbox/kc",
    ]  # fmt: skip
    assert kind.delete_argv("sb", kubeconfig=Path("/k")) == [
        "kind",
        "delete",
        "cluster",
        "--name",
        "sb",
        "--kubeconfig",
        "/k",
    ]
    assert kind.nodes_argv("sb") == ["kind", "get", "nodes", "--name", "sb"]
    assert kind.kubeconfig_argv("sb") == ["kind", "get", "kubeconfig", "--name", "sb"]
    assert kind.load_docker_image_argv("sb", "img:dev", ["sb-worker", "sb-worker2"]) == [
        "kind", "load", "docker-image", "img:dev", "--name", "sb", "--nodes", "sb-worker,sb-worker2",
    ]  # fmt: skip
    assert kind.load_image_archive_argv("sb", Path("/tmp/a.tar"), []) == [
        "kind", "load", "image-archive", "/tmp/a.tar", "--name", "sb",
    ]  # fmt: skip


def test_parsers_read_kinds_output() -> None:
    assert kind.parse_lines((FIXTURES / "get-clusters.txt").read_text()) == ["other", "sandbox"]
    assert kind.parse_lines("") == []
    assert kind.parse_lines("No kind clusters found.\n") == []


def test_cli_runs_through_the_runner_with_the_provider_env() -> None:
    runner = RecordingRunner(
        {r"get clusters": ok("sandbox\n"), r"get nodes": ok((FIXTURES / "get-nodes.txt").read_text())}
    )
    cli = KindCli("/opt/kind", provider="podman", runner=runner)
    assert cli.clusters() == ["sandbox"]
    assert sorted(cli.nodes("sandbox")) == ["sandbox-control-plane", "sandbox-worker", "sandbox-worker2"]
    assert runner.argvs[0] == ["/opt/kind", "get", "clusters"]
    assert all(c.env == {"KIND_EXPERIMENTAL_PROVIDER": "podman"} for c in runner.calls)
    assert KindCli(runner=runner).env is None


def test_create_streams_kinds_output_and_failures_raise() -> None:
    lines: list[str] = []
    runner = RecordingRunner(
        {r"create cluster": ok(" ✓ Ensuring node image\n ✓ Joining worker nodes 🚜\n")}
    )
    KindCli(runner=runner).create("sb", Path("c.yaml"), on_line=lines.append)
    assert runner.calls[0].streamed and lines[-1].endswith("Joining worker nodes 🚜")
    failing = KindCli(runner=RecordingRunner({r"delete": fail("ERROR: failed to delete")}))
    with pytest.raises(CommandFailed, match="kind delete cluster --name sb"):
        failing.delete("sb")
