"""`sandbox build` / `load` / `prune` on the real kind nodes: a source change gives a new tag on
the nodes, and prune removes the superseded one from the engine and every node with crictl,
keeping the current one. A throwaway task image (FROM the sample steps image, already built by
`make up`) in an extra images folder; everything it made is removed at the end."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import REPO, require

from sandbox.config import load_settings
from sandbox.core import images

SETTINGS = load_settings(REPO)
SANDBOX = str(REPO / ".venv" / "bin" / "sandbox")
NAME = "e2e-prune"


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    record = images.read_dag_record(SETTINGS).get("steps")
    require(record is not None, "the steps image is not built: run `make up` first")
    folder = tmp_path / NAME
    folder.mkdir()
    (folder / "Dockerfile").write_text(f"FROM {record['image']}\nCOPY nonce.txt /nonce.txt\n")
    (folder / "nonce.txt").write_text(uuid.uuid4().hex)
    folders = os.pathsep.join([str(REPO / "sample_dags" / "images"), str(tmp_path)])
    env = {**os.environ, "SANDBOX_IMAGES_FOLDERS": folders}
    yield env, folder
    for node in _nodes():
        for ref in _on_node(node):
            subprocess.run(["docker", "exec", node, "crictl", "rmi", f"docker.io/library/{ref}"], capture_output=True)
    left = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", NAME], capture_output=True, text=True
    ).stdout.split()
    for ref in left:
        subprocess.run(["docker", "rmi", ref], capture_output=True)


def _sandbox(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([SANDBOX, *args], capture_output=True, text=True, timeout=600, cwd=REPO, env=env)
    assert result.returncode == 0, f"sandbox {' '.join(args)}: {result.stderr[-2000:]}"
    return result


def _nodes() -> list[str]:
    out = subprocess.run(
        ["docker", "ps", "--format", "{{.Names}}", "--filter", f"label=io.x-k8s.kind.cluster={SETTINGS.cluster_name}"],
        capture_output=True, text=True,
    ).stdout
    return sorted(out.split())


def _on_node(node: str) -> set[str]:
    out = subprocess.run(
        ["docker", "exec", node, "crictl", "images", "-o", "json"], capture_output=True, text=True, check=True
    ).stdout
    return {
        tag.removeprefix("docker.io/library/")
        for image in json.loads(out)["images"] for tag in image.get("repoTags") or ()
        if tag.startswith(f"docker.io/library/{NAME}:")
    }


def test_prune_removes_the_superseded_tag_from_the_engine_and_every_node(
    project: tuple[dict[str, str], Path],
) -> None:
    env, folder = project
    _sandbox(env, "build", NAME)
    _sandbox(env, "load", NAME)
    old = images.read_dag_record(SETTINGS)[NAME]["image"]
    (folder / "nonce.txt").write_text(uuid.uuid4().hex)
    _sandbox(env, "build", NAME)
    _sandbox(env, "load", NAME)
    current = images.read_dag_record(SETTINGS)[NAME]["image"]
    assert current != old
    workers = [n for n in _nodes() if not n.endswith("-control-plane")]
    assert all(_on_node(n) == {old, current} for n in workers)

    result = json.loads(_sandbox(env, "prune", NAME, "--json").stdout)
    assert result["engine"] == [old] and result["kept"] == [current]
    assert {n: refs for n, refs in result["nodes"].items() if refs} == {n: [old] for n in workers}
    assert all(_on_node(n) == {current} for n in workers)
    listed = subprocess.run(["docker", "images", "-q", f"{old}"], capture_output=True, text=True).stdout
    assert listed.strip() == ""
