"""The product's own CLI runs the compose stack users run, unmodified, on podman.

`sandbox up --stack-only` with runtime = podman brings up compose/docker-compose.yaml on the
stand-in images (tagged as the official ones), and every service must pass the healthcheck the
file declares; then a plain-Python DAG runs through the containerised scheduler, RabbitMQ and
Celery worker. A wrong service name, port, variable, volume, dependency or healthcheck in the file
fails these tests. Compose is the real Compose v2 binary (.ci/run installs it), on podman's socket.

The tests of this module run in order against the session's sandbox project (`stack`), which
test_faults.py then breaks on purpose and finally removes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml
from harness import COMPOSE_FILE, Project, json_from, new_project, output_of

DAG_ID = "standin_smoke"
LOGICAL_DATE = "2021-12-01"
NOOP_UP_LIMIT_S = 45


def declared_services() -> dict[str, dict[str, Any]]:
    """The services `up` starts (no profile), as the compose file declares them."""
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    return {name: spec for name, spec in services.items() if not spec.get("profiles")}


def test_up_stack_only_brings_every_declared_service_to_its_healthcheck(
    stack: Project, docker_client: Any, standin_images: dict[str, str]
) -> None:
    result = stack.sandbox("up", "--stack-only")
    assert result.returncode == 0, output_of(result)
    assert "sandbox is up (stack-only)" in result.stdout

    status = stack.sandbox("status", "--json", timeout=120)
    report = json_from(status.stdout)
    assert status.returncode == 0 and report["healthy"], output_of(status)
    by_service = {s["service"]: s for s in report["services"]}
    for name, spec in declared_services().items():
        state = by_service.get(name)
        assert state is not None, f"service {name} was not created"
        if spec.get("restart") == "no":  # one-shot (airflow-init)
            assert (state["state"], state["exit_code"]) == ("exited", 0), state
        else:
            assert state["state"] == "running", state
            if "healthcheck" in spec:
                assert state["health"] == "healthy", state
    assert report["api"]["health"]["scheduler"]["status"] == "healthy"

    # The containers run the stand-ins, found under the official names without a pull.
    standin_ids = {docker_client.images.get(image).id for image in standin_images.values()}
    for container in stack.containers(docker_client):
        assert container.image.id in standin_ids, f"{container.name} runs {container.image.tags}"


def test_second_up_is_a_fast_noop(stack: Project, docker_client: Any) -> None:
    def started() -> dict[str, str]:
        return {c.name: c.attrs["State"]["StartedAt"] for c in stack.containers(docker_client)}

    before = started()
    began = time.monotonic()
    result = stack.sandbox("up", "--stack-only")
    elapsed = time.monotonic() - began
    assert result.returncode == 0, output_of(result)
    assert started() == before, f"a second `up` restarted containers:\n{output_of(result)}"
    assert elapsed < NOOP_UP_LIMIT_S, f"a second `up` took {elapsed:.1f}s:\n{output_of(result)}"


def test_run_dag_succeeds_through_the_containerised_scheduler_broker_and_worker(stack: Project) -> None:
    result = stack.sandbox("run-dag", DAG_ID, "--date", LOGICAL_DATE, "--no-lint", "--json", timeout=600)
    assert result.returncode == 0, output_of(result)
    run_result = json_from(result.stdout)
    assert run_result["state"] == "success"
    assert {t["task"]: t["state"] for t in run_result["tasks"]} == {"produce": "success", "check": "success"}

    # The Celery worker container ran them (not some other executor).
    worker_logs = stack.sandbox("logs", "airflow-worker", timeout=120)
    assert DAG_ID in worker_logs.stdout, output_of(worker_logs)


def test_the_airflow_cli_runs_in_the_scheduler_container(stack: Project) -> None:
    """`sandbox airflow ...` passes through to the container's airflow CLI, exit code included."""
    listed = stack.sandbox("airflow", "dags", "list", "-o", "json", timeout=180)
    assert listed.returncode == 0, output_of(listed)
    # Airflow may log before the document (`[2026-...] {...} WARNING ...`): the JSON is the last line.
    document = [line for line in listed.stdout.splitlines() if line.startswith("[{")][-1]
    assert DAG_ID in {d["dag_id"] for d in json.loads(document)}
    unknown = stack.sandbox("airflow", "no-such-command", timeout=180)
    assert unknown.returncode == 2 and "invalid choice" in unknown.stdout + unknown.stderr  # argparse's


def test_a_failing_healthcheck_is_reported_with_the_services_last_log_lines(
    tmp_path: Path, docker_client: Any, standin_images: dict[str, str]
) -> None:
    """Azurite alone, from the real file, with a healthcheck that always fails."""
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    azurite = document["services"]["azurite"]
    azurite["healthcheck"] = {
        "test": ["CMD-SHELL", "echo probe-failed; exit 1"],
        "interval": "1s",
        "timeout": "5s",
        "retries": 2,
        "start_period": "0s",
    }
    broken = {"services": {"azurite": azurite}, "volumes": {"azurite-data": None}}
    compose_file = tmp_path / "compose" / "docker-compose.yaml"
    compose_file.parent.mkdir()
    compose_file.write_text(yaml.safe_dump(broken))
    proj = new_project(tmp_path / "project", compose_file)
    try:
        result = proj.sandbox("up", "--stack-only", timeout=300)
        text = output_of(result)
        assert result.returncode != 0, text
        assert "Traceback" not in text, text
        assert "azurite" in text and "unhealthy" in text, text
        assert "successfully listens" in text, f"the service's last log lines are missing:\n{text}"
    finally:
        proj.sandbox("down", "--purge", "--yes", timeout=300)
        proj.remove_leftovers(docker_client)
