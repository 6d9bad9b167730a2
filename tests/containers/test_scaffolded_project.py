"""A project made by `sandbox init` outside the repository brings up the packaged compose stack.

No sandbox.toml key points at a compose file: the tool's own copy is used (the one the wheel
carries), `status` says so, and `down --purge` leaves no container, volume or state behind.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from harness import Project, free_port, json_from, output_of
from support import REPO, require_compose_v2

from sandbox.resources import shipped


def test_init_then_up_stack_only_runs_the_packaged_stack_and_purge_cleans_it(
    tmp_path: Path, docker_client: Any, standin_images: dict[str, str]
) -> None:
    require_compose_v2()
    assert REPO not in tmp_path.parents
    name = f"ct{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_") or k == "SANDBOX_STRICT"}
    env.update(SANDBOX_NAME=name, SANDBOX_RUNTIME="podman")
    env.setdefault("DOCKER_HOST", "unix:///run/podman/podman.sock")
    for port in ("API", "RABBITMQ_UI", "FLOWER", "AZURITE_BLOB"):
        env[f"SANDBOX_PORT_{port}"] = str(free_port())
    Project(tmp_path, name, env).sandbox("init", "demo", timeout=120)
    project = Project(tmp_path / "demo", name, env)
    try:
        up = project.sandbox("up", "--stack-only")
        assert up.returncode == 0, output_of(up)
        status = project.sandbox("status", "--json", timeout=120)
        data = json_from(status.stdout)
        assert status.returncode == 0 and data["healthy"], output_of(status)
        packaged = shipped("compose") / "docker-compose.yaml"
        assert data["files"]["compose"] == f"{packaged} (packaged default)"
        assert {s["service"] for s in data["services"]} >= {"postgres", "rabbitmq", "airflow-scheduler"}
    finally:
        purge = project.sandbox("down", "--purge", "--yes", timeout=300)
        leftovers = (project.containers(docker_client), project.volumes(docker_client))
        project.remove_leftovers(docker_client)
    assert purge.returncode == 0, output_of(purge)
    assert leftovers == ([], [])
    assert not (project.path / ".sandbox").exists()
