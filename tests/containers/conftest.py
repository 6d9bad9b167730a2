"""Fixtures of the container tier: podman's Docker-compatible API and the stand-in images."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import standins  # noqa: E402
from harness import COMPOSE_FILE, Project, new_project  # noqa: E402
from support import require, require_compose_v2, require_tool  # noqa: E402

DEFAULT_SOCKET = "unix:///run/podman/podman.sock"


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """The docker SDK talking to podman's API (DOCKER_HOST from tests/podman_env.sh)."""
    require_tool("podman")
    import docker

    base_url = os.environ.get("DOCKER_HOST", DEFAULT_SOCKET)
    client = docker.DockerClient(base_url=base_url, timeout=120)
    try:
        client.ping()
    except Exception as exc:  # the API is down: say how to start it
        require(False, f"no container API at {base_url} ({exc}); run tests/podman_setup.sh")
    yield client
    client.close()


@pytest.fixture(scope="session")
def standin_images(docker_client: Any) -> dict[str, str]:
    """Every stand-in built (or verified by its content hash); {name: image}."""
    require_tool("debootstrap")
    return standins.ensure_standins(lambda line: print(line, file=sys.stderr))




@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, docker_client: Any, standin_images: dict[str, str]) -> Iterator[Project]:
    """One sandbox project on the unmodified compose file, shared by the stack and fault tests
    (a cold `up` costs minutes here). Its first test brings it up; each later module's first
    test runs `up` again, a fast no-op when the stack is already healthy."""
    require_compose_v2()
    project = new_project(tmp_path_factory.mktemp("stack") / "project", COMPOSE_FILE)
    try:
        yield project
    finally:
        project.sandbox("down", "--purge", "--yes", timeout=300)
        project.remove_leftovers(docker_client)
