"""tests/e2e_summary.py's docker half against a real engine (podman's Docker API through the
docker CLI): it finds a compose-labelled container and reads its memory from `docker stats`."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_summary import memory_sample, stack_containers
from support import require, require_tool

BASE = "localhost/debian:bookworm"  # the base the stand-in images are built from


@pytest.fixture
def labelled(docker_client: Any) -> Iterator[tuple[str, str]]:
    require_tool("docker")
    require("DOCKER_HOST" in os.environ, "DOCKER_HOST is not set: source tests/podman_env.sh")
    require(bool(docker_client.images.list(name=BASE)), f"{BASE} is not built: run the container tier once")
    project = f"e2esummary{uuid.uuid4().hex[:8]}"
    container = docker_client.containers.run(
        BASE, ["sleep", "300"], detach=True, name=f"{project}-idle-1",
        labels={"com.docker.compose.project": project},
    )
    yield project, container.name
    container.remove(force=True)


def test_the_stack_is_found_by_label_and_its_memory_read(labelled: tuple[str, str]) -> None:
    project, name = labelled
    assert stack_containers(f"no-such-cluster-{project}", project) == [name]
    sample = memory_sample([name])
    assert set(sample) == {name}
    assert 0 < sample[name] < 2**30  # a sleeping shell: some memory, far below a GiB


def test_a_docker_failure_is_not_swallowed(labelled: tuple[str, str]) -> None:
    with pytest.raises(subprocess.CalledProcessError):
        memory_sample([f"{labelled[0]}-missing"])
