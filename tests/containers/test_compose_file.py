"""compose/docker-compose.yaml (+ compose/kind.yaml): valid compose, and wired as the sandbox needs.

The structural tests read the configuration Compose v2's `config` resolves from the very
variables `sandbox up` renders, so interpolation, anchors and the override merge are checked too.
v2 prints the canonical long syntax: ports and volumes as mappings, `depends_on` entries with
`required: true`, and the implicit `default` network spelled out.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from support import require_compose_v2, require_tool
from sandbox.adapters.runtime import Engine, Runtime
from sandbox.core.airflow_config import CONTAINER_DAGS, CONTAINER_KUBECONFIG, CONTAINER_PASSWORDS
from sandbox.config import AZURITE_IMAGE, POSTGRES_IMAGE, RABBITMQ_IMAGE, Ports, Settings, airflow_image
from sandbox.core.stack_files import compose_files, compose_variables, render_stack_files
from sandbox.state import StateDir

AIRFLOW_SERVICES = {
    "airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
    "airflow-triggerer", "airflow-worker", "flower",
}
LONG_RUNNING = {"postgres", "rabbitmq", "azurite"} | (AIRFLOW_SERVICES - {"airflow-init"})
POD_LAUNCHERS = {"airflow-scheduler", "airflow-worker", "airflow-triggerer"}
PORTS = Ports(api=18080, rabbitmq_ui=18672, flower=18555, azurite_blob=18000)
RUNTIME = Runtime("docker", Engine("unix:///var/run/docker.sock", False, "27.3.1", 16 << 30, "/var/lib/docker", False, "linux"), 1000, False)


@pytest.fixture(scope="module")
def project(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("project")
    (root / "compose").mkdir()
    for name in ("docker-compose.yaml", "kind.yaml"):
        (root / "compose" / name).write_text((repo / "compose" / name).read_text())
    (root / "sample_dags").mkdir()
    settings = Settings(project_dir=root, name="demo", ports=PORTS)
    state = StateDir(settings.state_dir)
    render_stack_files(settings, state, RUNTIME.airflow_uid, "full")
    return settings


def _config(settings: Settings, mode: str, *extra: str) -> dict:
    argv = [*require_compose_v2(), "-p", settings.compose_project]
    for path in compose_files(settings, mode):  # type: ignore[arg-type]
        argv += ["-f", str(path)]
    argv += ["--env-file", str(StateDir(settings.state_dir).compose_env_file), *extra, "config"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def full(project: Settings) -> dict:
    return _config(project, "full", "--profile", "flower")["services"]


@pytest.fixture(scope="module")
def stack_only(project: Settings) -> dict:
    return _config(project, "stack-only", "--profile", "flower")["services"]


def test_files_validate_against_the_compose_spec_schema(repo: Path) -> None:
    checker = require_tool("check-jsonschema") if not (repo / ".venv/bin/check-jsonschema").exists() else str(repo / ".venv/bin/check-jsonschema")
    files = [str(repo / "compose/docker-compose.yaml"), str(repo / "compose/kind.yaml")]
    result = subprocess.run([checker, "--builtin-schema", "vendor.compose-spec", *files], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_refuses_to_run_without_the_rendered_variables(repo: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
    result = subprocess.run(
        [*require_compose_v2(), "-p", "x", "-f", str(repo / "compose/docker-compose.yaml"), "--env-file", str(tmp_path / "none.env"), "config"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert result.returncode != 0


def test_services_are_the_expected_ones(full: dict, stack_only: dict) -> None:
    assert set(full) == set(stack_only) == LONG_RUNNING | {"airflow-init"}


def test_images_are_the_pinned_official_ones(full: dict) -> None:
    for name in AIRFLOW_SERVICES:
        assert full[name]["image"] == airflow_image()
    assert full["postgres"]["image"] == POSTGRES_IMAGE
    assert full["rabbitmq"]["image"] == RABBITMQ_IMAGE
    assert full["azurite"]["image"] == AZURITE_IMAGE


def test_the_airflow_version_is_not_written_in_the_compose_files(repo: Path) -> None:
    from sandbox.config import airflow_version

    for name in ("docker-compose.yaml", "kind.yaml"):
        assert airflow_version() not in (repo / "compose" / name).read_text()


def test_every_published_port_binds_localhost_with_the_configured_host_port(full: dict) -> None:
    published = {}
    for name, service in full.items():
        for port in service.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", f"{name} publishes {port}"
            published[name] = (int(port["published"]), int(port["target"]))
    assert published == {
        "airflow-apiserver": (PORTS.api, 8080),
        "rabbitmq": (PORTS.rabbitmq_ui, 15672),
        "flower": (PORTS.flower, 5555),
        "azurite": (PORTS.azurite_blob, 10000),
    }


def test_every_long_running_service_has_a_healthcheck(full: dict) -> None:
    for name in LONG_RUNNING:
        test = full[name].get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), name
    assert "healthcheck" not in full["airflow-init"]


def test_airflow_healthchecks_are_the_documented_ones(full: dict) -> None:
    def cmd(name: str) -> str:
        return " ".join(full[name]["healthcheck"]["test"][1:])

    assert "http://localhost:8080/api/v2/monitor/health" in cmd("airflow-apiserver")
    assert "http://localhost:8974/health" in cmd("airflow-scheduler")
    assert "airflow jobs check --job-type DagProcessorJob" in cmd("airflow-dag-processor")
    assert "airflow jobs check --job-type TriggererJob" in cmd("airflow-triggerer")
    assert "inspect ping" in cmd("airflow-worker")
    assert "pg_isready" in cmd("postgres")
    assert "rabbitmq-diagnostics" in cmd("rabbitmq")


def test_dependencies_wait_for_health_and_for_the_migration(full: dict) -> None:
    def conditions(name: str) -> dict[str, str]:
        deps = full[name]["depends_on"]
        assert all(dep["required"] for dep in deps.values()), name
        return {dependency: dep["condition"] for dependency, dep in deps.items()}

    assert conditions("airflow-init") == {"postgres": "service_healthy"}
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        deps = conditions(name)
        assert deps["postgres"] == deps["rabbitmq"] == "service_healthy"
        assert deps["airflow-init"] == "service_completed_successfully"
    for name in ("airflow-worker", "airflow-triggerer"):
        assert conditions(name)["airflow-apiserver"] == "service_healthy"


def test_every_airflow_service_gets_the_one_env_file_and_no_inline_airflow_setting(
    project: Settings, full: dict, repo: Path
) -> None:
    state = StateDir(project.state_dir)
    rendered = dict(line.split("=", 1) for line in state.airflow_env_file.read_text().splitlines())
    for name in AIRFLOW_SERVICES:
        environment = full[name]["environment"]
        # `config` inlines env_file: exactly the rendered file, plus non-Airflow extras.
        assert {k: v for k, v in environment.items() if k in rendered} == rendered
        assert set(environment) - set(rendered) <= {"DUMB_INIT_SETSID"}
    for name in ("docker-compose.yaml", "kind.yaml"):
        code = [line.split("#", 1)[0] for line in (repo / "compose" / name).read_text().splitlines()]
        assert not [line for line in code if "AIRFLOW__" in line or "AIRFLOW_CONN" in line]
    main = yaml.safe_load((repo / "compose/docker-compose.yaml").read_text())
    assert main["x-airflow"]["env_file"] == "${SANDBOX_AIRFLOW_ENV_FILE:?run `sandbox up`}"


def test_airflow_runs_as_the_host_uid_with_gid_0(full: dict) -> None:
    for name in AIRFLOW_SERVICES:
        assert full[name]["user"] == f"{RUNTIME.airflow_uid}:0"


def _mounts(service: dict) -> dict[str, str]:
    """container path -> host source (bind) or volume name, from v2's long-syntax volumes."""
    return {volume["target"]: volume["source"] for volume in service.get("volumes", [])}


def _read_only(service: dict) -> set[str]:
    return {volume["target"] for volume in service.get("volumes", []) if volume.get("read_only")}


def test_kubeconfig_is_mounted_exactly_where_pods_are_launched(project: Settings, full: dict, stack_only: dict) -> None:
    state = StateDir(project.state_dir)
    for name, service in full.items():
        mounts = _mounts(service)
        if name in POD_LAUNCHERS:
            assert mounts[str(CONTAINER_KUBECONFIG)] == str(state.airflow_kubeconfig)
            assert str(CONTAINER_KUBECONFIG) in _read_only(service), name
        else:
            assert str(CONTAINER_KUBECONFIG) not in mounts, name
        assert str(state.admin_kubeconfig) not in _mounts(service).values(), name
    for name, service in stack_only.items():
        assert str(CONTAINER_KUBECONFIG) not in _mounts(service), name


def test_dags_passwords_and_data_volumes(project: Settings, full: dict) -> None:
    state = StateDir(project.state_dir)
    for name in AIRFLOW_SERVICES:
        assert _mounts(full[name])[str(CONTAINER_DAGS)] == str(project.dags_folder)
    assert _mounts(full["airflow-apiserver"])[str(CONTAINER_PASSWORDS)] == str(state.passwords_file)
    assert _mounts(full["postgres"])["/var/lib/postgresql/data"] == "postgres-data"


def test_only_pod_launchers_and_azurite_join_the_kind_network(project: Settings, full: dict, stack_only: dict) -> None:
    for name, service in full.items():
        networks = set(service.get("networks", {"default": None}))
        if name in POD_LAUNCHERS | {"azurite"}:
            assert networks == {"default", "kind"}, name
        else:
            assert networks == {"default"}, name
    assert full["azurite"]["networks"]["kind"]["aliases"] == [f"{project.name}-azurite"]
    for name, service in stack_only.items():
        assert "kind" not in service.get("networks", {}), name


def test_kind_network_is_external(project: Settings) -> None:
    networks = _config(project, "full")["networks"]
    assert networks["kind"] == {"external": True, "name": "kind"}
    assert set(_config(project, "stack-only")["networks"]) == {"default"}


def test_secrets_reach_postgres_and_rabbitmq_from_the_state_dir(project: Settings, full: dict) -> None:
    secrets = StateDir(project.state_dir).secrets()
    assert full["postgres"]["environment"]["POSTGRES_PASSWORD"] == secrets.postgres_password
    assert full["rabbitmq"]["environment"]["RABBITMQ_DEFAULT_PASS"] == secrets.rabbitmq_password
    assert full["postgres"]["environment"]["POSTGRES_USER"] == "airflow"
    assert full["rabbitmq"]["environment"]["RABBITMQ_DEFAULT_USER"] == "airflow"


def test_every_compose_variable_is_rendered(repo: Path, project: Settings) -> None:
    import re

    used = set()
    for name in ("docker-compose.yaml", "kind.yaml"):
        used |= set(re.findall(r"(?<!\$)\$\{(\w+)", (repo / "compose" / name).read_text()))
    rendered = compose_variables(project, StateDir(project.state_dir), RUNTIME.airflow_uid, StateDir(project.state_dir).secrets())
    assert used == set(rendered)
