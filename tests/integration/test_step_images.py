"""The `steps` task image built for real on podman and every DAG step run inside it.

The image is built through the product's build code (sandbox.core.images) from
`localhost/sandbox-python:3.11` (tests/images/build_base.sh) as BASE_IMAGE. Each step runs with
the exact command and arguments of the pod its DAG task renders for 2021-12-01, against a real
Azurite reached over `--network host`; the connection string plays the blob Secret's part.
The same command lines then run as plain Python: the blobs must be byte-identical.
"""

from __future__ import annotations

import copy
import importlib
import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from azurite import running_azurite, snapshot
from support import REPO, podman_images

from sandbox.adapters.docker_images import DockerImages
from sandbox.config import Settings
from sandbox.core import blob, images
from sandbox.core.pod_render import render_pod
from sandbox.progress import SilentReporter

BASE = "localhost/sandbox-python:3.11"
DAGS = REPO / "sample_dags"
STEPS_SOURCE = DAGS / "images" / "steps"
DATE = "2021-12-01"


@pytest.fixture(scope="module")
def engine() -> Iterator[DockerImages]:
    yield podman_images()


@pytest.fixture(scope="module")
def built(engine: DockerImages, tmp_path_factory: pytest.TempPathFactory) -> images.BuildResult:
    """sample_dags/images/steps built by the product; the record goes to a temporary DAG folder.

    The tag is the hash of the sources and the base: any change to them builds for real. The
    image is kept afterwards, as the product keeps it (an unchanged tag is never rebuilt).
    """
    project = tmp_path_factory.mktemp("project")
    settings = Settings(project_dir=project, images_folders=(DAGS / "images",))
    reporter = SilentReporter()
    [result] = images.build(settings, reporter, engine, ["steps"], build_args={"BASE_IMAGE": BASE})
    print(f"steps image: built={result.built} in {result.seconds:.1f}s, {result.size / 1e6:.0f} MB")
    return result


@pytest.fixture(scope="module")
def pods(built: images.BuildResult) -> dict[str, dict[str, dict[str, Any]]]:
    """Every pod task's rendered pod for DATE, the image resolved to the tag just built."""
    from airflow.dag_processing.dagbag import DagBag

    with pytest.MonkeyPatch.context() as mp:
        # Production-style resolution to exactly the reference podman holds: <registry>/steps:<tag>.
        mp.setenv("TASK_IMAGE_REGISTRY", images.CANONICAL_PREFIX.rstrip("/"))
        mp.setenv("TASK_IMAGE_TAG", built.ref.partition(":")[2])
        mp.syspath_prepend(str(DAGS))
        bag = DagBag(dag_folder=DAGS, bundle_path=DAGS, load_op_links=False)
    assert bag.import_errors == {}
    rendered: dict[str, dict[str, dict[str, Any]]] = {}
    steps_image = images.CANONICAL_PREFIX + built.ref
    for dag_id, dag in bag.dags.items():
        for task in dag.topological_sort():
            # The `steps` image's tasks only: spark_etl's submit runs the `spark` image, which
            # tests/integration/test_spark_image.py runs with its own command line.
            if not hasattr(task, "build_pod_request_obj") or task.image != steps_image:
                continue
            task = copy.deepcopy(task)
            task.render_template_fields({"ds": DATE, "dag": dag, "task": task})
            rendered.setdefault(dag_id, {})[task.task_id] = render_pod(task)
    assert set(rendered) == {"recommend", "train_compare_deploy"}, set(rendered)
    return rendered


def container_of(pod: dict[str, Any]) -> dict[str, Any]:
    [container] = pod["spec"]["containers"]
    return container


def pod_env(pod: dict[str, Any], connection: str) -> dict[str, str]:
    """The pod's environment with the blob Secret's value filled in."""
    env = {}
    for var in container_of(pod).get("env", []):
        ref = var["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == (blob.BLOB_SECRET_NAME, blob.BLOB_SECRET_KEY)
        env[var["name"]] = connection
    return env


def run_in_image(engine: DockerImages, pod: dict[str, Any], connection: str) -> dict[str, Any]:
    """`docker run --network host` with the pod's image, command, args and env; the metrics."""
    container = container_of(pod)
    output = engine.client.containers.run(
        container["image"],
        entrypoint=container["command"],
        command=container["args"],
        environment=pod_env(pod, connection),
        network_mode="host",
        remove=True,
        stdout=True,
        stderr=False,
    )
    lines = output.decode().splitlines()
    assert len(lines) == 1, lines
    metrics = json.loads(lines[0])
    assert f"steps.{metrics['step']}" == container["command"][2]
    assert metrics["date"] == DATE
    return metrics


def run_in_process(pod: dict[str, Any]) -> None:
    """The same command line as plain Python: `python -m steps.<x> ARGS` -> steps.<x>.main(ARGS)."""
    container = container_of(pod)
    assert container["command"][:2] == ["python", "-m"]
    main = importlib.import_module(container["command"][2]).main
    assert main(container["args"]) == 0


def train_compare_deploy_plan(pods: dict[str, dict[str, Any]], chosen: str) -> list[str]:
    return [t for t in pods if not t.startswith("deploy_model_") or t == chosen]


def test_every_step_runs_in_its_image_with_the_pods_command_line(
    engine: DockerImages,
    built: images.BuildResult,
    pods: dict[str, dict[str, dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert {container_of(p)["image"] for d in pods.values() for p in d.values()} == {
        images.CANONICAL_PREFIX + built.ref
    }
    monkeypatch.setenv("TASK_IMAGE_REGISTRY", "registry.example/ml")  # for importing the DAG file
    monkeypatch.setenv("TASK_IMAGE_TAG", "test")
    monkeypatch.syspath_prepend(str(DAGS))
    monkeypatch.syspath_prepend(str(STEPS_SOURCE))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    with running_azurite() as connection:
        monkeypatch.setenv(blob.BLOB_ENV, connection)
        better_model = importlib.import_module("train_compare_deploy").better_model

        # In the image: recommend, then train_compare_deploy with the branch the worker takes.
        for pod in pods["recommend"].values():
            run_in_image(engine, pod, connection)
        tcd = pods["train_compare_deploy"]
        metrics = {
            task_id: run_in_image(engine, tcd[task_id], connection)
            for task_id in ("extract", "features", "train_model_a", "train_model_b")
        }
        # compare's choice from the metrics lines the train containers printed.
        chosen = "deploy_model_" + better_model({m: metrics[f"train_model_{m}"] for m in ("a", "b")})
        assert chosen == "deploy_model_b"
        deployed = run_in_image(engine, tcd[chosen], connection)
        assert deployed["model"] == "b"
        in_image = snapshot(connection, f"{blob.BLOB_CONTAINER}/")
        # recommend: raw input + 3 outputs; train_compare_deploy: raw input, dataset, features,
        # model + metrics for a and b, deployment.
        assert len(in_image) == 4 + 8

        # The same command lines as plain Python on an empty account: identical bytes.
        from azure.storage.blob import BlobServiceClient

        BlobServiceClient.from_connection_string(connection).delete_container(blob.BLOB_CONTAINER)
        importlib.import_module("steps.common").service.cache_clear()
        for pod in pods["recommend"].values():
            run_in_process(pod)
        for task_id in train_compare_deploy_plan(tcd, chosen):
            run_in_process(tcd[task_id])
        capsys.readouterr()
        assert snapshot(connection, f"{blob.BLOB_CONTAINER}/") == in_image


def test_the_image_lists_its_steps_by_default(
    engine: DockerImages, built: images.BuildResult
) -> None:
    output = engine.client.containers.run(images.CANONICAL_PREFIX + built.ref, remove=True).decode()
    assert "preprocess inference postprocess extract features train deploy" in output


def test_the_image_is_small_and_runs_as_non_root(
    engine: DockerImages, built: images.BuildResult
) -> None:
    base = engine.inspect(BASE)
    assert base is not None
    assert built.size - base.size < 60e6, "the step image should add only azure-storage-blob"
    config = engine.client.api.inspect_image(images.CANONICAL_PREFIX + built.ref)["Config"]
    assert config["User"] == "1000:1000"
