"""Helpers of the container tier: free ports, unique names, and containers, networks and volumes
that are always removed, whatever the test did.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.proc import Completed, run

DAGS = Path(__file__).resolve().parent / "dags"
COMPOSE_FILE = Path(__file__).resolve().parents[2] / "compose" / "docker-compose.yaml"
PROJECT_LABEL = "com.docker.compose.project"
UP_TIMEOUT_S = 900


def free_port() -> int:
    """A port nothing listens on now (the kernel picks it; we release it for the container)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@contextmanager
def running(client: Any, image: str, **kwargs: Any) -> Iterator[Any]:
    """A detached container, force-removed (with its anonymous volumes) on the way out."""
    container = client.containers.run(image, detach=True, **kwargs)
    try:
        yield container
    finally:
        container.remove(force=True, v=True)


def run_once(client: Any, image: str, command: Any, *, timeout: float = 300, **kwargs: Any) -> tuple[int, str]:
    """Run a command to completion in a fresh container; (exit code, stdout+stderr)."""
    with running(client, image, command=command, **kwargs) as container:
        status = container.wait(timeout=timeout)
        output = container.logs(stdout=True, stderr=True).decode(errors="replace")
        return int(status["StatusCode"]), output


@contextmanager
def network(client: Any) -> Iterator[str]:
    """A private network where containers find each other by name."""
    net = client.networks.create(unique("standin-net"))
    try:
        yield net.name
    finally:
        net.remove()


@contextmanager
def volume(client: Any) -> Iterator[str]:
    vol = client.volumes.create(unique("standin-vol"))
    try:
        yield vol.name
    finally:
        vol.remove(force=True)


@dataclass
class Project:
    """A throw-away sandbox project driven through the `sandbox` CLI."""

    path: Path
    name: str
    env: dict[str, str]

    def sandbox(self, *args: str, timeout: float = UP_TIMEOUT_S) -> Completed:
        return run([sys.executable, "-m", "sandbox", *args], env=self.env, cwd=self.path, check=False, timeout=timeout)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """A `sandbox` command in the background, in its own process group (a closed terminal
        kills the whole group: `os.killpg`)."""
        return subprocess.Popen(
            [sys.executable, "-m", "sandbox", *args], env=self.env, cwd=self.path, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        )

    def api(self) -> Any:
        """The product's own Airflow API client for this project (the generated admin login)."""
        from sandbox.config import load_settings
        from sandbox.core.wiring import Adapters

        return Adapters(load_settings(self.path, environ=self.env)).airflow()

    def container(self, client: Any, service: str) -> Any:
        """The one container of `service` (any state)."""
        found = client.containers.list(
            all=True, filters={"label": [f"{PROJECT_LABEL}={self.name}", f"com.docker.compose.service={service}"]}
        )
        assert len(found) == 1, f"{service}: {[c.name for c in found]}"
        return found[0]

    def containers(self, client: Any) -> list[Any]:
        return client.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={self.name}"})

    def volumes(self, client: Any) -> list[str]:
        return [v.name for v in client.volumes.list(filters={"label": f"{PROJECT_LABEL}={self.name}"})]

    def remove_leftovers(self, client: Any) -> None:
        """Whatever a failed test left behind: containers, then volumes, of this project only."""
        for container in self.containers(client):
            container.remove(force=True, v=True)
        for name in self.volumes(client):
            client.volumes.get(name).remove(force=True)


def new_project(root: Path, compose_file: Path) -> Project:
    """A sandbox.toml for podman on free ports, and the environment its commands run with."""
    name = f"ct{uuid.uuid4().hex[:8]}"
    root.mkdir(parents=True, exist_ok=True)
    (root / "sandbox.toml").write_text(
        f'name = "{name}"\n'
        'runtime = "podman"\n'
        f'dags_folder = "{DAGS}"\n'
        f'compose_file = "{compose_file}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_") or k == "SANDBOX_STRICT"}
    env.setdefault("DOCKER_HOST", "unix:///run/podman/podman.sock")
    for port in ("API", "RABBITMQ_UI", "FLOWER", "AZURITE_BLOB"):
        env[f"SANDBOX_PORT_{port}"] = str(free_port())
    return Project(root, name, env)


def output_of(result: Completed) -> str:
    text = result.stdout if result.stdout == result.stderr else f"{result.stdout}\n{result.stderr}"
    return text[-6000:]


def json_from(stdout: str) -> Any:
    return json.loads(stdout[stdout.index("{") :])
