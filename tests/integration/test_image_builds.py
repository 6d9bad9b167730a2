"""Real builds on podman through the product's own build code (sandbox.core.images).

Images build from `localhost/sandbox-python:3.11` (tests/images/build_base.sh), the stand-in
for python:3.x-slim, passed as BASE_IMAGE like the sample Dockerfiles expect. Every session uses
fresh content (a nonce file), so the first build really builds; everything it tagged is removed
at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.adapters.docker_images import BuildFailed, DockerImages
from sandbox.config import Settings
from sandbox.core import images
from sandbox.progress import SilentReporter

from support import podman_images

BASE = "localhost/sandbox-python:3.11"
BUILD_ARGS = {"BASE_IMAGE": BASE}
PREFIX = "sbxtest-"
DOCKERFILE = """\
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}
WORKDIR /app
COPY requirements.txt .
RUN echo "installing dependencies" && python -c "print('deps ready')"
COPY app/ app/
CMD ["python", "-m", "app"]
"""


@pytest.fixture(scope="session")
def engine() -> Iterator[DockerImages]:
    client = podman_images()
    yield client
    _remove_test_images(client)


def _remove_test_images(client: DockerImages) -> None:
    """Our tagged images, then the intermediate (cache) images podman labelled too; a parent
    refuses removal while a child exists, so repeat until nothing more goes."""
    while True:
        ours = [
            image for image in client.client.images.list(all=True, filters={"label": images.LABEL_NAME})
            if image.labels.get(images.LABEL_NAME, "").startswith(PREFIX)
        ]
        removed = 0
        for image in sorted(ours, key=lambda i: not i.tags):
            try:
                client.client.images.remove(image.id, force=True)
                removed += 1
            except Exception:  # a parent of a not-yet-removed child: next round
                continue
        if not ours or not removed:
            return


def make_project(root: Path, name: str, dockerfile: str = DOCKERFILE) -> tuple[Settings, Path]:
    context = root / "sample_dags" / "images" / name
    (context / "app").mkdir(parents=True)
    (context / "Dockerfile").write_text(dockerfile)
    (context / "requirements.txt").write_text(f"# nonce {uuid.uuid4().hex}\n")
    (context / "app" / "__main__.py").write_text("print('hello v1')\n")
    (context / "notes.md").write_text("design notes, not shipped\n")
    (context / ".dockerignore").write_text("*.md\n")
    return Settings(project_dir=root), context


def test_content_tag_no_rebuild_rebuild_on_change_ignore_respected(engine: DockerImages, tmp_path: Path) -> None:
    name = f"{PREFIX}hello"
    settings, context = make_project(tmp_path, name)

    cold = SilentReporter()
    [first] = images.build(settings, cold, engine, build_args=BUILD_ARGS)
    assert first.built and first.ref == f"{name}:{first.context_hash[:12]}"
    assert any(line.startswith("STEP") for line in cold.lines)  # output streamed through the reporter
    info = engine.inspect(images.CANONICAL_PREFIX + first.ref)
    assert info is not None and info.id == first.image_id
    assert info.tags == (first.ref,)  # normalised: no docker.io/library/ or podman's localhost/
    assert info.labels[images.LABEL_NAME] == name and info.labels[images.LABEL_HASH] == first.context_hash
    record = json.loads((settings.dags_folder / ".sandbox-images.json").read_text())
    assert record["images"][name]["image"] == first.ref

    again = SilentReporter()
    [second] = images.build(settings, again, engine, build_args=BUILD_ARGS)
    assert not second.built and second.ref == first.ref and again.lines == [] and again.steps == []

    (context / "notes.md").write_text("edited notes\n")  # .dockerignore'd
    [ignored] = images.build(settings, SilentReporter(), engine, build_args=BUILD_ARGS)
    assert not ignored.built and ignored.ref == first.ref

    (context / "app" / "__main__.py").write_text("print('hello v2')\n")
    warm = SilentReporter()
    [changed] = images.build(settings, warm, engine, build_args=BUILD_ARGS)
    assert changed.built and changed.ref != first.ref and changed.image_id != first.image_id
    # only the code layer was rebuilt: the dependency step came from the cache
    assert "deps ready" not in warm.lines and any("Using cache" in line for line in warm.lines)
    record = json.loads((settings.dags_folder / ".sandbox-images.json").read_text())
    assert record["images"][name]["image"] == changed.ref


def test_broken_dockerfile_is_one_line_plus_the_failing_steps_output(engine: DockerImages, tmp_path: Path) -> None:
    broken = DOCKERFILE.replace(
        'python -c "print(\'deps ready\')"', 'echo "resolving deps" && python -c "import no_such_module_xyz"'
    )
    settings, _ = make_project(tmp_path, f"{PREFIX}broken", broken)
    reporter = SilentReporter()
    with pytest.raises(BuildFailed) as err:
        images.build(settings, reporter, engine, build_args=BUILD_ARGS)
    message = err.value.message
    assert "\n" not in message
    assert message.startswith(f"task image '{PREFIX}broken' failed to build at `RUN echo")
    assert "sandbox build sbxtest-broken" in (err.value.hint or "")
    shown = "\n".join(reporter.messages)
    assert "resolving deps" in shown and "No module named 'no_such_module_xyz'" in shown
    assert "STEP 1/" not in shown  # only the failing step's output, not the whole log


def _cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandbox", "-C", str(project), *args],
        capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"},
    )


def test_sandbox_build_through_the_cli(engine: DockerImages, tmp_path: Path) -> None:
    name = f"{PREFIX}cli"
    settings, context = make_project(tmp_path, name)
    first = _cli(tmp_path, "build", "--build-arg", f"BASE_IMAGE={BASE}")
    assert first.returncode == 0, first.stderr
    ref = json.loads((settings.dags_folder / ".sandbox-images.json").read_text())["images"][name]["image"]
    assert f"{ref}  built in" in first.stdout
    second = _cli(tmp_path, "build", name, "--build-arg", f"BASE_IMAGE={BASE}")
    assert second.returncode == 0 and f"{ref}  up to date" in second.stdout

    listing = _cli(tmp_path, "images", "--json", "--build-arg", f"BASE_IMAGE={BASE}")
    [row] = json.loads(listing.stdout)
    assert (row["name"], row["ref"], row["built"]) == (name, ref, True) and row["size"] > 0

    (context / "Dockerfile").write_text(DOCKERFILE.replace("COPY app/ app/", "RUN exit 3"))
    failed = _cli(tmp_path, "build", "--build-arg", f"BASE_IMAGE={BASE}")
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "failed to build at `RUN exit 3`" in errors[0]

    unknown = _cli(tmp_path, "build", "nope")
    assert unknown.returncode == 2 and "unknown task image(s): nope" in unknown.stderr


def test_save_gives_an_archive_whose_config_digest_is_the_image_id(engine: DockerImages, tmp_path: Path) -> None:
    """What kind loads: the archive names the image and its config blob is the image ID, the
    same digest crictl reports as `id` once containerd imports it."""
    settings, _ = make_project(tmp_path, f"{PREFIX}save", "FROM localhost/debian:bookworm\nCOPY requirements.txt /\n")
    [built] = images.build(settings, SilentReporter(), engine)
    archive = tmp_path / "image.tar"
    engine.save(images.CANONICAL_PREFIX + built.ref, archive)
    with tarfile.open(archive) as tar:
        [manifest] = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert images.CANONICAL_PREFIX + built.ref in manifest["RepoTags"] or built.ref in manifest["RepoTags"]
    assert "sha256:" + manifest["Config"].removesuffix(".json").rpartition("/")[2] == built.image_id


def test_exec_runs_in_a_node_container(engine: DockerImages) -> None:
    container = engine.client.containers.run(BASE, ["sleep", "60"], detach=True, remove=True)
    try:
        out = engine.exec(container.name, ["python", "-c", "import json; print(json.dumps({'images': []}))"])
        assert images.parse_crictl_images(out) == []
        with pytest.raises(Exception, match="exit code 2"):
            engine.exec(container.name, ["sh", "-c", "echo nope >&2; exit 2"])
    finally:
        container.kill()


def test_prune_removes_only_superseded_tags_this_sandbox_built(engine: DockerImages, tmp_path: Path) -> None:
    """Build args come from sandbox.toml (no --build-arg anywhere), a source change supersedes
    the first tag, and `sandbox prune` removes exactly that one: the current tag and a tag this
    sandbox never built (another project's, on the same engine) stay."""
    name = f"{PREFIX}prune"
    settings, context = make_project(tmp_path, name)
    (tmp_path / "sandbox.toml").write_text(f'[build_args]\nBASE_IMAGE = "{BASE}"\n')
    assert _cli(tmp_path, "build").returncode == 0
    old = json.loads((settings.dags_folder / ".sandbox-images.json").read_text())["images"][name]["image"]
    (context / "app" / "__main__.py").write_text("print('hello v2')\n")
    assert _cli(tmp_path, "build").returncode == 0
    current = json.loads((settings.dags_folder / ".sandbox-images.json").read_text())["images"][name]["image"]
    assert current != old
    foreign = f"{name}:{'0' * 12}"
    engine.client.images.get(images.CANONICAL_PREFIX + old).tag(images.CANONICAL_PREFIX + name, "0" * 12)

    dry = _cli(tmp_path, "prune", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["engine"] == [old]
    assert engine.inspect(images.CANONICAL_PREFIX + old) is not None

    pruned = _cli(tmp_path, "prune", "--json")
    assert pruned.returncode == 0, pruned.stderr
    body = json.loads(pruned.stdout)
    assert (body["engine"], body["kept"], body["nodes"]) == ([old], [current], None)
    assert engine.inspect(images.CANONICAL_PREFIX + old) is None
    assert engine.inspect(images.CANONICAL_PREFIX + current) is not None
    assert engine.inspect(images.CANONICAL_PREFIX + foreign) is not None

    again = _cli(tmp_path, "prune")
    assert again.returncode == 0 and "engine: removed nothing" in again.stdout
    [row] = json.loads(_cli(tmp_path, "images", "--json").stdout)
    assert row["ref"] == current and row["built"]
