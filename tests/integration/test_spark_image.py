"""The `spark` task image built for real on podman and the spark_etl job run inside it.

Built through the product's build code (sandbox.core.images) from the Debian/PyPI base
(`localhost/sandbox-python:3.11`, tests/images/build_base.sh; setup-spark.sh adds Debian's JRE and
PyPI's pyspark), cached by its content tag like every task image. In the image:
`spark-submit --version`; then the PySpark job in local mode with the application and arguments
of the submit pod the DAG renders for 2021-12-01, started through the image's entrypoint in
`driver` mode (what Spark runs in the driver pod), against a real Azurite over
`--network host`: twice, with byte-identical blobs; and once with --fail true.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import shlex
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
DATE = "2021-12-01"
PREFIX = f"{blob.BLOB_CONTAINER}/spark_etl/{DATE}/"
NAMES = f"spark_etl/{DATE}/"  # blob names under the container, as snapshot() keys them


@pytest.fixture(scope="module")
def engine() -> Iterator[DockerImages]:
    yield podman_images()


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(project_dir=tmp_path_factory.mktemp("project"), images_folders=(DAGS / "images",))


@pytest.fixture(scope="module")
def built(engine: DockerImages, settings: Settings) -> images.BuildResult:
    [result] = images.build(settings, SilentReporter(), engine, ["spark"], build_args={"BASE_IMAGE": BASE})
    print(f"spark image: built={result.built} in {result.seconds:.1f}s, {result.size / 1e6:.0f} MB")
    return result


@pytest.fixture(scope="module")
def image(built: images.BuildResult) -> str:
    return images.CANONICAL_PREFIX + built.ref


@pytest.fixture(scope="module")
def submit_pod(image: str) -> dict[str, Any]:
    """The submit pod the DAG renders for DATE, its image the one just built."""
    from airflow.dag_processing.dagbag import DagBag

    with pytest.MonkeyPatch.context() as mp:
        registry, _, tag = image.rpartition(":")
        mp.setenv("TASK_IMAGE_REGISTRY", registry.rpartition("/")[0])
        mp.setenv("TASK_IMAGE_TAG", tag)
        mp.syspath_prepend(str(DAGS))
        bag = DagBag(dag_folder=DAGS / "spark_etl.py", bundle_path=DAGS, load_op_links=False)
    assert bag.import_errors == {}
    dag = bag.dags["spark_etl"]
    task = copy.deepcopy(dag.get_task("submit"))
    task.render_template_fields(
        {"ds": DATE, "ds_nodash": "20211201", "run_id": "manual", "params": {"fail": False},
         "ti": type("TI", (), {"try_number": 1})(), "dag": dag, "task": task}
    )
    pod = render_pod(task)
    assert pod["spec"]["containers"][0]["image"] == image
    return pod


@pytest.fixture(scope="module")
def job_command(submit_pod: dict[str, Any]) -> list[str]:
    """The application and its arguments from the submit pod."""
    args = submit_pod["spec"]["containers"][0]["args"]
    start = next(i for i, a in enumerate(args) if a.startswith("local://"))
    return [args[start].removeprefix("local://"), *args[start + 1 :]]


def run_driver(engine: DockerImages, image: str, job: list[str], connection: str) -> tuple[int, str, str]:
    """`/opt/entrypoint.sh driver --master local[2] <job>` as the driver pod would, local mode."""
    container = engine.client.containers.run(
        image,
        command=["driver", "--master", "local[2]", *job],
        # The pod IP in a pod; here the host network, where the hostname may not be loopback.
        environment={blob.BLOB_ENV: connection, "SPARK_DRIVER_BIND_ADDRESS": "127.0.0.1", "SPARK_LOCAL_IP": "127.0.0.1"},
        network_mode="host",
        detach=True,
    )
    try:
        code = container.wait(timeout=900)["StatusCode"]
        out = container.logs(stdout=True, stderr=False).decode()
        err = container.logs(stdout=False, stderr=True).decode()
    finally:
        container.remove(force=True)
    return code, out, err


def test_spark_submit_runs_in_the_image_as_the_spark_user(engine: DockerImages, image: str) -> None:
    output = engine.client.containers.run(
        image, command=["/opt/spark/bin/spark-submit", "--version"], remove=True, stdout=True, stderr=True
    ).decode()
    assert "version 4.1.2" in output, output[-2000:]
    config = engine.client.api.inspect_image(image)["Config"]
    assert config["User"] == "185:185" and config["Entrypoint"] == ["/opt/entrypoint.sh"]


def test_the_submit_wrapper_runs_spark_submit_against_the_api_server(
    engine: DockerImages, image: str, submit_pod: dict[str, Any]
) -> None:
    """The submit pod's own command line in the image, without a cluster (no network): the
    wrapper writes the templates, spark-submit loads its Kubernetes client and fails to reach
    kubernetes.default.svc; the failure is one error line and no XCom."""
    [base, _sidecar] = submit_pod["spec"]["containers"]
    env = {e["name"]: e["value"] for e in base["env"]}
    script = (
        f"{' '.join(map(shlex.quote, base['command'] + base['args']))}; code=$?; "
        "ls /tmp/spark-pod-templates; test -e /airflow/xcom/return.json && echo XCOM; exit $code"
    )
    container = engine.client.containers.run(
        image, entrypoint=["/bin/bash", "-c"], command=[script], environment=env,
        network_mode="none", detach=True,
    )
    try:
        code = container.wait(timeout=600)["StatusCode"]
        out = container.logs(stdout=True, stderr=False).decode()
        err = container.logs(stdout=False, stderr=True).decode()
    finally:
        container.remove(force=True)
    assert code == 1, err[-3000:]
    assert out.split() == ["driver.json", "executor.json"]  # written; no XCOM
    assert "kubernetes.default.svc" in err, err[-3000:]
    assert err.strip().splitlines()[-1].startswith("error: spark-submit exited with")


def test_an_unchanged_image_is_not_rebuilt(
    engine: DockerImages, settings: Settings, built: images.BuildResult
) -> None:
    [again] = images.build(settings, SilentReporter(), engine, ["spark"], build_args={"BASE_IMAGE": BASE})
    assert again.ref == built.ref and again.built is False


def test_the_job_aggregates_a_day_deterministically(
    engine: DockerImages, image: str, job_command: list[str]
) -> None:
    assert job_command[0] == "/opt/sandbox/sparkjob/etl.py"
    with running_azurite() as connection:
        code, out, err = run_driver(engine, image, job_command, connection)
        assert code == 0, err[-3000:]
        metrics = json.loads(out.strip().splitlines()[-1])
        assert metrics == {
            "date": DATE, "groups": 40, "orders": 2000, "revenue_cents": metrics["revenue_cents"],
            "step": "spark_etl", "top_store": "s00",
        }
        first = snapshot(connection, PREFIX)
        assert sorted(first) == [
            f"{NAMES}raw/orders.jsonl", f"{NAMES}sales_by_store_category.csv", f"{NAMES}summary.json"
        ]
        rows = list(csv.DictReader(io.StringIO(first[f"{NAMES}sales_by_store_category.csv"].decode())))
        assert len(rows) == 40 and rows == sorted(rows, key=lambda r: (r["store"], r["category"]))
        assert sum(int(r["orders"]) for r in rows) == 2000
        assert sum(int(r["revenue_cents"]) for r in rows) == metrics["revenue_cents"]
        summary = json.loads(first[f"{NAMES}summary.json"])
        assert summary == {k: v for k, v in metrics.items() if k != "step"}

        code, out, err = run_driver(engine, image, job_command, connection)
        assert code == 0, err[-3000:]
        assert snapshot(connection, PREFIX) == first  # same date, same bytes

        failing = [*job_command[:-1], "true"]
        assert job_command[-2:] == ["--fail", "false"]
        code, out, err = run_driver(engine, image, failing, connection)
        # Spark's PythonRunner merges the job's stderr into its stdout (redirectErrorStream):
        # the driver log is one stream, as `kubectl logs` and the sensor's log tail show it.
        assert code != 0 and '"step"' not in out
        assert "error: failing on purpose (--fail true) after reading 2000 orders" in out + err
