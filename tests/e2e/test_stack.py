"""Against the real stack after `make up` (GitHub Actions, Docker + kind): every service healthy,
ports on 127.0.0.1 only, the kubeconfig mounts as designed, Airflow reaches the API server over
the `kind` network with the service account only, a second `up` is a fast no-op."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from support import REPO, require

from sandbox.core.airflow_config import CONTAINER_KUBECONFIG
from sandbox.config import load_settings
from sandbox.state import StateDir

SETTINGS = load_settings(REPO)
STATE = StateDir(SETTINGS.state_dir)
SANDBOX = str(REPO / ".venv" / "bin" / "sandbox")


def sandbox(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SANDBOX, *args], capture_output=True, text=True, timeout=900, cwd=REPO)


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120, check=check)


@pytest.fixture(scope="module")
def status() -> dict:
    require(STATE.compose_env_file.is_file(), "the sandbox is not up: run `make up` first")
    result = sandbox("status", "--json")
    data = json.loads(result.stdout)
    assert result.returncode == 0, data["problems"]
    return data


def _container(service: str) -> str:
    names = docker(
        "ps", "-q", "--filter", f"label=com.docker.compose.project={SETTINGS.compose_project}",
        "--filter", f"label=com.docker.compose.service={service}",
    ).stdout.split()
    assert names, f"no running container for {service}"
    return names[0]


def test_everything_is_healthy(status: dict) -> None:
    assert status["healthy"] and status["mode"] == "full" and status["cluster"]["ok"]
    running = {s["service"] for s in status["services"] if s["state"] == "running"}
    assert running >= {
        "postgres", "rabbitmq", "azurite", "airflow-apiserver", "airflow-scheduler",
        "airflow-dag-processor", "airflow-triggerer", "airflow-worker",
    }
    assert {k: v["status"] for k, v in status["api"]["health"].items()} == {
        "metadatabase": "healthy", "scheduler": "healthy", "triggerer": "healthy", "dag_processor": "healthy",
    }


def test_every_published_port_binds_localhost(status: dict) -> None:
    for service in ("airflow-apiserver", "rabbitmq", "azurite"):
        ports = json.loads(docker("inspect", "--format", "{{json .NetworkSettings.Ports}}", _container(service)).stdout)
        bindings = [b for published in ports.values() if published for b in published]
        assert bindings and all(b["HostIp"] == "127.0.0.1" for b in bindings), (service, bindings)


def test_the_kubeconfig_is_mounted_only_where_pods_are_launched(status: dict) -> None:
    for service in ("airflow-scheduler", "airflow-worker", "airflow-triggerer", "airflow-apiserver", "airflow-dag-processor"):
        mounts = json.loads(docker("inspect", "--format", "{{json .Mounts}}", _container(service)).stdout)
        sources = {m["Destination"]: m.get("Source", "") for m in mounts}
        if service in ("airflow-scheduler", "airflow-worker", "airflow-triggerer"):
            assert sources[str(CONTAINER_KUBECONFIG)] == str(STATE.airflow_kubeconfig)
        else:
            assert str(CONTAINER_KUBECONFIG) not in sources
        assert str(STATE.admin_kubeconfig) not in sources.values()


def test_the_worker_reaches_the_api_server_as_the_service_account(status: dict) -> None:
    probe = (
        "from kubernetes import client, config\n"
        f"config.load_kube_config('{CONTAINER_KUBECONFIG}')\n"
        "api = client.CoreV1Api()\n"
        f"print(len(api.list_namespaced_pod('{SETTINGS.task_namespace}').items))\n"
        "try:\n    api.list_node()\n    print('nodes-allowed')\n"
        "except client.ApiException as e:\n    print('nodes', e.status)\n"
    )
    result = docker("exec", _container("airflow-worker"), "python", "-c", probe, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["nodes", "403"]


def test_a_second_up_is_a_fast_no_op(status: dict) -> None:
    before = docker("inspect", "--format", "{{.State.StartedAt}}", _container("airflow-scheduler")).stdout
    started = time.monotonic()
    result = sandbox("up")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "verify the Airflow stack" in result.stderr and "compose up" not in result.stderr
    assert docker("inspect", "--format", "{{.State.StartedAt}}", _container("airflow-scheduler")).stdout == before
    assert elapsed < 120, f"second up took {elapsed:.0f}s"
