"""The kind CLI: the only module that runs `kind`. argv comes from the pure builders below.

Every command that could touch a kubeconfig gets `--kubeconfig` pointing into the state dir, so
kind never edits the user's ~/.kube/config.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from sandbox.proc import Completed, Runner, run


def clusters_argv(binary: str = "kind") -> list[str]:
    return [binary, "get", "clusters"]


def create_argv(
    name: str, config: Path, *, wait: str = "120s", kubeconfig: Path | None = None, binary: str = "kind"
) -> list[str]:
    argv = [binary, "create", "cluster", "--name", name, "--config", str(config), "--wait", wait]
    if kubeconfig is not None:
        argv += ["--kubeconfig", str(kubeconfig)]
    return argv


def delete_argv(name: str, *, kubeconfig: Path | None = None, binary: str = "kind") -> list[str]:
    argv = [binary, "delete", "cluster", "--name", name]
    if kubeconfig is not None:
        argv += ["--kubeconfig", str(kubeconfig)]
    return argv


def nodes_argv(name: str, binary: str = "kind") -> list[str]:
    return [binary, "get", "nodes", "--name", name]


def kubeconfig_argv(name: str, binary: str = "kind") -> list[str]:
    return [binary, "get", "kubeconfig", "--name", name]


def load_docker_image_argv(
    name: str, image: str, nodes: Sequence[str], binary: str = "kind"
) -> list[str]:
    return [binary, "load", "docker-image", image, "--name", name, *_nodes_flag(nodes)]


def load_image_archive_argv(
    name: str, archive: Path, nodes: Sequence[str], binary: str = "kind"
) -> list[str]:
    return [binary, "load", "image-archive", str(archive), "--name", name, *_nodes_flag(nodes)]


def _nodes_flag(nodes: Sequence[str]) -> list[str]:
    return ["--nodes", ",".join(nodes)] if nodes else []


def parse_lines(stdout: str) -> list[str]:
    """`kind get clusters|nodes` print one name a line ("No kind clusters found." goes to stderr)."""
    return [line.strip() for line in stdout.splitlines() if line.strip() and " " not in line.strip()]


class KindCli:
    """Thin wrapper over the kind binary; provider "podman" selects kind's podman provider."""

    def __init__(
        self, binary: str = "kind", *, provider: str | None = None, runner: Runner = run
    ) -> None:
        self.binary = binary
        self.runner = runner
        self.env = (
            {"KIND_EXPERIMENTAL_PROVIDER": provider} if provider in ("podman", "nerdctl") else None
        )

    def _run(self, argv: list[str], **kwargs) -> Completed:
        return self.runner(argv, env=self.env, **kwargs)

    def clusters(self) -> list[str]:
        return parse_lines(self._run(clusters_argv(self.binary)).stdout)

    def create(
        self,
        name: str,
        config: Path,
        *,
        wait: str = "120s",
        on_line: Callable[[str], None] | None = None,
        kubeconfig: Path | None = None,
        timeout: float | None = None,
    ) -> None:
        argv = create_argv(name, config, wait=wait, kubeconfig=kubeconfig, binary=self.binary)
        self._run(argv, on_line=on_line, timeout=timeout)

    def delete(self, name: str, *, kubeconfig: Path | None = None) -> None:
        self._run(delete_argv(name, kubeconfig=kubeconfig, binary=self.binary))

    def nodes(self, name: str) -> list[str]:
        return parse_lines(self._run(nodes_argv(name, self.binary)).stdout)

    def kubeconfig(self, name: str) -> str:
        return self._run(kubeconfig_argv(name, self.binary)).stdout

    def load_docker_image(self, name: str, image: str, nodes: Sequence[str]) -> None:
        self._run(load_docker_image_argv(name, image, nodes, self.binary))

    def load_image_archive(self, name: str, archive: Path, nodes: Sequence[str]) -> None:
        self._run(load_image_archive_argv(name, archive, nodes, self.binary))
