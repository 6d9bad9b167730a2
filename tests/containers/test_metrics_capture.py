"""The real `steps` image prints its metrics line; the worker's capture code reads it.

The image is built by the product (sandbox.core.images, content tag, cached) from the local
python base and run on podman against a real Azurite (`--network host`). Its real log, with the
timestamps kubelet adds for `timestamps=True` (read from its CRI-format log file), is then served by a stand-in for the one thing
that cannot run here — the Kubernetes API's `read_namespaced_pod_log`/`read_namespaced_pod` —
to the provider's own `PodManager.fetch_container_logs`, with `MetricsCapture` as its callback,
exactly as KubernetesPodOperator follows a pod in the worker. The record must carry the metrics
line the container printed, and nothing from its stderr notes.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from azurite import running_azurite
from support import REPO, require, require_tool

from sandbox.adapters.docker_images import DockerImages
from sandbox.config import Settings
from sandbox.core import images

sys.path.insert(0, str(REPO / "sample_dags"))
from sandbox_tasks import lineage  # noqa: E402

BASE = "localhost/sandbox-python:3.11"
DAGS = REPO / "sample_dags"
POD_JSON = REPO / "tests" / "fixtures" / "kube" / "pod-train-succeeded.json"
DATE = "2021-12-01"


@pytest.fixture(scope="module")
def steps_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DockerImages, str]]:
    require_tool("podman")
    base_url = os.environ.get("DOCKER_HOST", "unix:///run/podman/podman.sock")
    engine = DockerImages(base_url)
    try:
        engine.client.ping()
    except Exception as exc:  # noqa: BLE001 - no engine: skip with the reason
        require(False, f"no container API at {base_url} ({exc}); run tests/podman_setup.sh")
    subprocess.run(["bash", str(REPO / "tests" / "images" / "build_base.sh")], check=True, capture_output=True)
    settings = Settings(project_dir=tmp_path_factory.mktemp("project"), images_folders=(DAGS / "images",))
    from sandbox.progress import SilentReporter

    [built] = images.build(settings, SilentReporter(), engine, ["steps"], build_args={"BASE_IMAGE": BASE})
    yield engine, images.CANONICAL_PREFIX + built.ref


class KubeApiStandIn:
    """`read_namespaced_pod_log` answers with the container's real log bytes (as urllib3's
    streamed response, which is what `_preload_content=False` gives); `read_namespaced_pod`
    with the pod, its container terminated just now. Every call is recorded."""

    def __init__(self, log: bytes, pod: Any) -> None:
        self.log, self.pod, self.calls = log, pod, []

    def read_namespaced_pod_log(self, **kwargs: Any) -> Any:
        self.calls.append(("read_namespaced_pod_log", kwargs))
        log = self.log
        return SimpleNamespace(stream=lambda amt=None, decode_content=True: iter([log[:37], log[37:]]))

    def read_namespaced_pod(self, name: str, namespace: str) -> Any:
        self.calls.append(("read_namespaced_pod", {"name": name, "namespace": namespace}))
        return self.pod


def served_by_kubelet(cri_log: str) -> bytes:
    """The container's log file — podman's k8s-file driver writes the CRI format containerd
    writes on a kind node: `<RFC3339Nano> <stream> <P|F> <content>` — as kubelet serves it for
    `timestamps=True`: partial (P) entries joined up to the full (F) one that ends the line,
    each line prefixed with its first entry's timestamp. (An unbuffered Python `print` is two
    writes, the text and the newline: P then an empty F.)"""
    lines, pending = [], None
    for entry in cri_log.splitlines():
        stamp, _stream, tag, content = (entry.split(" ", 3) + [""])[:4]
        if pending is None:
            pending = [stamp, ""]
        pending[1] += content
        if tag == "F":
            lines.append(f"{pending[0]} {pending[1]}\n")
            pending = None
    return "".join(lines).encode()


def recorded_pod(image: str) -> Any:
    from kubernetes.client import ApiClient

    data = json.loads(POD_JSON.read_text())
    data["metadata"]["name"] = f"extract-{secrets.token_hex(4)}"
    container = data["spec"]["containers"][0]
    container.update(image=image, command=["python", "-m", "steps.extract"])
    status = data["status"]["containerStatuses"][0]
    status["image"] = image
    status["state"]["terminated"]["finishedAt"] = datetime.now(UTC).isoformat()
    return ApiClient().deserialize(SimpleNamespace(data=json.dumps(data)), "V1Pod")


def test_the_steps_image_metrics_line_reaches_the_record(steps_image: tuple[DockerImages, str]) -> None:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.providers.cncf.kubernetes.utils.pod_manager import PodManager

    engine, image = steps_image
    data = f"sandbox/train_compare_deploy/{DATE}"
    argv = ["--date", DATE, "--input", f"{data}/raw/measurements.jsonl", "--output", f"{data}/dataset.json"]
    with running_azurite() as connection:
        container = engine.client.containers.run(
            image, entrypoint=["python", "-m", "steps.extract"], command=argv,
            environment={"AZURE_STORAGE_CONNECTION_STRING": connection}, network_mode="host",
            name=f"sbx-lineage-{secrets.token_hex(4)}", detach=True,
        )
        try:
            assert container.wait(timeout=300)["StatusCode"] == 0
            printed = container.logs(stdout=True, stderr=False).decode()
            log_path = subprocess.run(
                ["podman", "inspect", "--format", "{{.HostConfig.LogConfig.Path}}", container.name],
                check=True, capture_output=True, text=True,
            ).stdout.strip()
            cri_log = Path(log_path).read_text()
        finally:
            container.remove(force=True)
    log = served_by_kubelet(cri_log)
    [metrics_line] = printed.splitlines()  # the step's contract: stdout is the metrics line only
    assert b"seeding synthetic" in log  # its stderr note is in the same log, as kubelet serves it

    pod = recorded_pod(image)
    pod.spec.containers[0].args = argv
    api = KubeApiStandIn(log, pod)
    PodManager(kube_client=api, callbacks=[lineage.MetricsCapture]).fetch_container_logs(
        pod, "base", follow=True, post_termination_timeout=120
    )
    assert api.calls[0] == ("read_namespaced_pod_log", {
        "name": pod.metadata.name, "namespace": "sandbox-tasks", "container": "base", "follow": True,
        "timestamps": True, "_preload_content": False, "_request_timeout": (1800, 300),
    })
    operator = KubernetesPodOperator(task_id="extract", image=image, cmds=["python"], arguments=argv)
    pushed: dict[str, Any] = {}
    ti = SimpleNamespace(
        dag_id="train_compare_deploy", run_id="manual__1", task_id="extract", map_index=-1, try_number=1,
        xcom_push=lambda key, value: pushed.__setitem__(key, value),
    )
    context = {"ti": ti, "dag_run": SimpleNamespace(conf={}), "params": {}}
    lineage.MetricsCapture.on_pod_completion(pod=pod, client=api, mode="sync", operator=operator, context=context)

    assert pushed[lineage.METRICS_KEY] == json.loads(metrics_line)
    assert pushed[lineage.METRICS_KEY]["step"] == "extract"
    record = pushed[lineage.LINEAGE_KEY]
    assert record["warnings"] == [] and record["image"]["ref"] == image
    assert record["inputs"] == [f"{data}/raw/measurements.jsonl"] and record["outputs"] == [f"{data}/dataset.json"]
