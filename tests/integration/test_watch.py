"""`sandbox watch` on podman: a saved file in a task image's folder is a real build (content tag)
and an updated DAG-folder record; a burst of saves is one build; a broken Dockerfile prints the
failure and watching goes on (the fix builds). Import errors: new ones shown, fixed ones said.
Runs the product's watch loop in a thread against the real engine (no cluster: build + record,
as in a stack-only sandbox)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.config import Settings
from sandbox.core import images
from sandbox.core.watch import ImportErrorWatcher, watch
from sandbox.progress import SilentReporter
from sandbox.waiting import NotReady, wait_until
from sandbox.adapters.docker_images import DockerImages
from support import podman_images

BASE = "localhost/sandbox-python:3.11"  # tests/images/build_base.sh, as in test_image_builds
PREFIX = "sbxwatch-"
DOCKERFILE = """\
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}
WORKDIR /app
COPY requirements.txt .
RUN echo "installing dependencies"
COPY app/ app/
CMD ["python", "-m", "app"]
"""

pytestmark = pytest.mark.integration


class Watching:
    def __init__(self, settings: Settings, client: object) -> None:
        self.settings, self.reporter, self.builds = settings, SilentReporter(), []
        self.stopped = threading.Event()

        def rebuild(names: list[str]) -> None:
            self.builds.append(names)
            images.build(settings, self.reporter, client, names, build_args={"BASE_IMAGE": BASE})

        self.thread = threading.Thread(
            target=watch, args=(settings, self.reporter, rebuild),
            kwargs={"stop": self.stopped.is_set, "interval": 0.2, "settle": 1.0}, daemon=True,
        )

    def record(self) -> dict[str, dict[str, str]]:
        return images.read_dag_record(self.settings)

    def wait_record(self, name: str, not_ref: str | None, timeout: float = 600) -> str:
        def changed() -> str:
            ref = self.record().get(name, {}).get("image")
            if not ref or ref == not_ref:
                raise NotReady(f"record of {name} is still {ref}")
            return ref

        return wait_until(changed, timeout=timeout, interval=0.2, what=f"a new build of {name}")


@pytest.fixture(scope="module")
def engine() -> Iterator[DockerImages]:
    client = podman_images()
    yield client
    for _ in range(5):  # tagged images first, then the cache layers they leave (children first)
        ours = [i for i in client.client.images.list(all=True, filters={"label": images.LABEL_NAME})
                if i.labels.get(images.LABEL_NAME, "").startswith(PREFIX)]
        for image in sorted(ours, key=lambda i: not i.tags):
            try:
                client.client.images.remove(image.id, force=True)
            except Exception:  # noqa: BLE001 - a parent of a child not removed yet: next round
                continue


@pytest.fixture
def watching(engine: DockerImages, tmp_path: Path) -> Iterator[tuple[Watching, Path, str]]:
    name = f"{PREFIX}watch{uuid.uuid4().hex[:6]}"
    context = tmp_path / "images" / name
    (context / "app").mkdir(parents=True)
    (context / "Dockerfile").write_text(DOCKERFILE)
    (context / "requirements.txt").write_text(f"# nonce {uuid.uuid4().hex}\n")
    (context / "app" / "__main__.py").write_text("print('v1')\n")
    (tmp_path / "dags").mkdir()
    settings = Settings(project_dir=tmp_path, images_folders=(tmp_path / "images",), dags_folder=tmp_path / "dags")
    w = Watching(settings, engine)
    w.thread.start()
    wait_until(lambda: bool(w.reporter.messages), timeout=60, interval=0.1, what="watch to start")
    yield w, context, name
    w.stopped.set()
    w.thread.join(timeout=60)


def test_a_save_builds_a_burst_builds_once_a_broken_dockerfile_keeps_watching(watching, engine: DockerImages) -> None:
    w, context, name = watching
    assert w.builds == []  # nothing changed yet: nothing built
    (context / "app" / "__main__.py").write_text("print('v2')\n")
    first = w.wait_record(name, None)
    assert w.builds == [[name]]
    assert first.endswith(images.plan_selected(w.settings, [name], {"BASE_IMAGE": BASE})[0].ref.split(":")[1])
    assert engine.inspect(images.CANONICAL_PREFIX + first) is not None  # really built

    for n in range(5):  # a burst of saves inside the settle time
        (context / "app" / "__main__.py").write_text(f"print('v3 save {n}')\n")
    second = w.wait_record(name, first)
    assert w.builds == [[name], [name]]

    (context / "Dockerfile").write_text(DOCKERFILE.replace("RUN echo", "RUN no-such-command-xyz &&"))
    wait_until(
        lambda: any("failed to build" in m for m in w.reporter.messages),
        timeout=600, interval=0.2, what="the failure to be reported",
    )
    assert w.thread.is_alive() and w.record()[name]["image"] == second
    (context / "Dockerfile").write_text(DOCKERFILE)
    (context / "app" / "__main__.py").write_text("print('v4')\n")
    assert w.wait_record(name, second) not in (first, second)


def test_import_errors_new_changed_and_fixed() -> None:
    answers = iter([{"a.py": "boom"}, {"a.py": "boom"}, {"a.py": "bang", "b.py": "x"}, {}])
    watcher = ImportErrorWatcher(lambda: next(answers))
    assert watcher.changes() == ({"a.py": "boom"}, [])
    assert watcher.changes() == ({}, [])
    assert watcher.changes() == ({"a.py": "bang", "b.py": "x"}, [])
    assert watcher.changes() == ({}, ["a.py", "b.py"])
