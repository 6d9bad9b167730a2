"""`airflow_requirements`: the official Airflow image (here its stand-in, tagged as the official
one) extended with the project's requirements by the product's own build code, on podman."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.adapters.docker_images import BuildFailed, DockerImages
from sandbox.config import Settings, airflow_image, airflow_version
from sandbox.core import images
from sandbox.core.images.airflow import EXTENDED_REPOSITORY, LABEL, ensure_airflow_image, planned_ref
from sandbox.progress import SilentReporter

REQUIREMENT = "cowsay==6.1"  # pure Python, not in the Airflow image


@pytest.fixture
def engine(standin_images: dict[str, str], docker_client: Any) -> Iterator[DockerImages]:
    client = DockerImages(os.environ.get("DOCKER_HOST", "unix:///run/podman/podman.sock"))
    yield client
    for image in docker_client.images.list(filters={"label": f"{LABEL}=airflowimagetest"}):
        docker_client.images.remove(image.id, force=True)


def _settings(tmp_path: Path, requirements: str) -> Settings:
    path = tmp_path / "requirements-airflow.txt"
    path.write_text(requirements)
    return Settings(project_dir=tmp_path, name="airflowimagetest", airflow_requirements=path)


def test_requirements_are_importable_in_the_extended_image_as_any_uid(
    engine: DockerImages, docker_client: Any, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, f"{REQUIREMENT}\n")
    first = SilentReporter()
    ref = ensure_airflow_image(settings, engine, first)
    assert ref.startswith(EXTENDED_REPOSITORY + ":") and ref == planned_ref(settings)
    assert first.steps == ["airflow image with requirements-airflow.txt"]
    # compose runs it as the host user with GID 0, like the official image
    out = docker_client.containers.run(
        ref, ["python", "-c", "import airflow, cowsay; print(airflow.__version__)"],
        user="4321:0", remove=True,
    )
    assert out.decode().strip().splitlines()[-1] == airflow_version()

    again = SilentReporter()
    assert ensure_airflow_image(settings, engine, again) == ref and again.steps == []  # nothing built

    (tmp_path / "requirements-airflow.txt").write_text(f"{REQUIREMENT}\n# pinned for the team\n")
    assert planned_ref(settings) != ref  # a changed file is a new tag: `up` recreates the containers
    assert planned_ref(Settings(project_dir=tmp_path)) == airflow_image()  # none: the official image

    # the superseded extended image is what `sandbox prune` removes; the current one stays
    current = ensure_airflow_image(settings, engine, SilentReporter())
    result = images.prune(settings, SilentReporter(), engine, None)
    assert result.engine == (ref.rpartition("/")[2],) and result.kept == (current.rpartition("/")[2],)
    assert engine.inspect(ref) is None and engine.inspect(current) is not None


def test_an_uninstallable_requirement_is_one_line_plus_pips_output(engine: DockerImages, tmp_path: Path) -> None:
    settings = _settings(tmp_path, "sandbox-no-such-package-xyz==1.0\n")
    reporter = SilentReporter()
    with pytest.raises(BuildFailed) as err:
        ensure_airflow_image(settings, engine, reporter)
    assert "\n" not in err.value.message
    assert err.value.message.startswith("the Airflow image with")
    assert "requirements-airflow.txt" in (err.value.hint or "")
    assert any("sandbox-no-such-package-xyz" in line for line in reporter.messages)
