"""The archive fallback of `sandbox load`, run on purpose on the real kind nodes.

With Docker's containerd image store `kind load docker-image` usually succeeds for the
single-platform images the sandbox builds, so the fallback (`docker save` through the engine API,
then `kind load image-archive`) would never run in CI. `SANDBOX_IMAGE_LOAD=archive` is the
product's setting that takes that path every time; this test loads a throwaway task image (FROM
the sample steps image `make up` built) that way and asks crictl on the virtual node for it.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import REPO, require

from sandbox.config import load_settings
from sandbox.core import images
from sandbox.core.kind_config import declared_nodes

SETTINGS = load_settings(REPO)
SANDBOX = str(REPO / ".venv" / "bin" / "sandbox")
NAME = "e2e-archive"


def _docker(*args: str, check: bool = True) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    assert not check or result.returncode == 0, f"docker {' '.join(args)}: {result.stderr[-1000:]}"
    return result.stdout


def _virtual_node() -> str:
    (virtual,) = [n.name for n in declared_nodes(SETTINGS) if n.is_virtual_node]
    return virtual


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    record = images.read_dag_record(SETTINGS).get("steps")
    require(record is not None, "the steps image is not built: run `make up` first")
    folder = tmp_path / NAME
    folder.mkdir()
    (folder / "Dockerfile").write_text(f"FROM {record['image']}\nCOPY nonce.txt /nonce.txt\n")
    (folder / "nonce.txt").write_text(uuid.uuid4().hex)  # a tag no node holds yet
    folders = os.pathsep.join([str(REPO / "sample_dags" / "images"), str(tmp_path)])
    yield {**os.environ, "SANDBOX_IMAGES_FOLDERS": folders, "SANDBOX_IMAGE_LOAD": "archive"}
    built = images.read_dag_record(load_settings(REPO, environ={**os.environ, "SANDBOX_IMAGES_FOLDERS": folders}))
    ref = (built.get(NAME) or {}).get("image")
    if ref:
        for node in _docker("ps", "--format", "{{.Names}}", "--filter", f"label=io.x-k8s.kind.cluster={SETTINGS.cluster_name}").split():
            _docker("exec", node, "crictl", "rmi", f"{images.CANONICAL_PREFIX}{ref}", check=False)
        _docker("rmi", ref, check=False)


def _sandbox(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([SANDBOX, *args], capture_output=True, text=True, timeout=600, cwd=REPO, env=env)
    assert result.returncode == 0, f"sandbox {' '.join(args)}: {result.stdout[-1000:]}\n{result.stderr[-2000:]}"
    return result


def test_image_load_archive_puts_the_image_on_the_virtual_node(env: dict[str, str]) -> None:
    _sandbox(env, "build", NAME)
    loaded = _sandbox(env, "load", NAME)
    # Rich wraps at 80 columns when not on a terminal: compare with the line breaks undone.
    out, err = " ".join(loaded.stdout.split()), " ".join(loaded.stderr.split())
    assert "(from an archive)" in out, out + err
    assert "image_load = archive" in err and "kind load docker-image failed" not in err  # not tried

    ref = images.read_dag_record(load_settings(REPO, environ=env))[NAME]["image"]
    canonical = f"{images.CANONICAL_PREFIX}{ref}"
    image_id = _docker("image", "inspect", "-f", "{{.Id}}", ref).strip()
    virtual = _virtual_node()
    on_node = images.parse_crictl_images(_docker("exec", virtual, "crictl", "images", "-o", "json"))
    assert images.node_has(on_node, image_id, canonical), (
        f"{canonical} ({image_id}) not on {virtual}: {[i.repo_tags for i in on_node]}"
    )
