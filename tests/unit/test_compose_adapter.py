"""sandbox.adapters.compose: argv builders, `ps` parsing from recorded output, choosing compose."""

from __future__ import annotations

from pathlib import Path

import pytest

from fakes import RecordingRunner, fail, ok
from sandbox.adapters.compose import (
    Compose,
    ComposeCommand,
    ComposeProject,
    down_argv,
    find_compose,
    logs_argv,
    parse_health,
    parse_podman_ps,
    parse_ps_v2,
    ps_argv,
    up_argv,
)
from sandbox.adapters.runtime import Engine, Runtime
from sandbox.errors import PrerequisiteError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "compose"
V2 = ComposeCommand(("docker", "compose"), "2.29.7")
V1 = ComposeCommand(("docker-compose",), "1.29.2")
PROJECT = ComposeProject("demo", (Path("/p/compose/docker-compose.yaml"), Path("/p/compose/kind.yaml")), Path("/p/.sandbox/compose.env"))
DOCKER = Runtime("docker", Engine("unix:///var/run/docker.sock", False, "27.3.1", 16 << 30, "/var/lib/docker", False, "linux"), 1000, False)
PODMAN = Runtime("podman", Engine("unix:///run/podman/podman.sock", True, "4.3.1", 16 << 30, "/var/lib/containers/storage", False, "debian"), 0, True)
GLOBAL = ["-p", "demo", "-f", "/p/compose/docker-compose.yaml", "-f", "/p/compose/kind.yaml", "--env-file", "/p/.sandbox/compose.env"]


def test_argv_builders() -> None:
    assert up_argv(V2, PROJECT) == ["docker", "compose", *GLOBAL, "up", "-d"]
    assert up_argv(V1, PROJECT) == ["docker-compose", *GLOBAL, "up", "-d"]
    assert down_argv(V2, PROJECT) == ["docker", "compose", *GLOBAL, "down", "--remove-orphans"]
    assert down_argv(V2, PROJECT, volumes=True)[-1] == "--volumes"
    assert logs_argv(V2, PROJECT, ["airflow-worker"], tail=20, follow=True) == [
        "docker", "compose", *GLOBAL, "logs", "--no-color", "--tail", "20", "-f", "airflow-worker",
    ]
    assert logs_argv(V2, PROJECT) == ["docker", "compose", *GLOBAL, "logs", "--no-color"]
    profiled = ComposeProject("demo", PROJECT.files, PROJECT.env_file, ("flower",))
    assert up_argv(V2, profiled)[-4:] == ["--profile", "flower", "up", "-d"]


def test_ps_uses_compose_json_with_v2_and_the_project_label_with_v1() -> None:
    assert ps_argv(V2, PROJECT, "docker") == ["docker", "compose", *GLOBAL, "ps", "--all", "--format", "json"]
    assert ps_argv(V1, PROJECT, "podman") == [
        "podman", "ps", "--all", "--format", "json", "--filter", "label=com.docker.compose.project=demo",
    ]


def test_parse_recorded_podman_ps() -> None:
    states = {s.service: s for s in parse_podman_ps((FIXTURES / "podman_ps.json").read_text())}
    assert set(states) == {"db", "sick", "broken-init", "init", "slow", "plain"}
    assert (states["db"].state, states["db"].health, states["db"].ok) == ("running", "healthy", True)
    assert states["db"].published_ports == (18091,)
    assert (states["sick"].health, states["sick"].ok) == ("unhealthy", False)
    assert (states["slow"].health, states["slow"].ok) == ("starting", False)
    assert (states["plain"].health, states["plain"].ok, states["plain"].has_healthcheck) == ("", True, False)
    assert states["init"].completed and not states["broken-init"].completed
    assert (states["broken-init"].state, states["broken-init"].exit_code) == ("exited", 3)
    assert states["db"].container == "rec_db_1"


@pytest.mark.parametrize("fixture", ["compose_v2_ps.ndjson", "compose_v2_ps_array.json"])
def test_parse_compose_v2_ps_both_shapes(fixture: str) -> None:
    states = {s.service: s for s in parse_ps_v2((FIXTURES / fixture).read_text())}
    assert states["postgres"].ok and states["postgres"].health == "healthy"
    assert states["postgres"].published_ports == ()
    assert states["airflow-apiserver"].published_ports == (8080,)
    if fixture.endswith("ndjson"):
        assert states["airflow-apiserver"].health == "starting"
        assert states["airflow-scheduler"].health == "unhealthy"
        assert states["airflow-init"].completed
        assert (states["airflow-worker"].state, states["airflow-worker"].exit_code) == ("exited", 1)
        assert states["rabbitmq"].published_ports == (15672,)


def test_parse_empty_ps() -> None:
    assert parse_ps_v2("") == [] and parse_podman_ps("[]\n") == []


def test_find_compose_prefers_v2_and_uses_v1_only_with_podman() -> None:
    runner = RecordingRunner({r"^docker compose version": ok("2.29.7\n"), r"^docker-compose version": ok("1.29.2\n")})
    assert find_compose(DOCKER, runner=runner) == V2
    assert runner.calls[0].env == {"DOCKER_HOST": "unix:///var/run/docker.sock"}

    only_v1 = RecordingRunner({r"^docker compose version": fail("docker: unknown flag: --short", 125), r"^docker-compose version": ok("1.29.2\n")})
    assert find_compose(DOCKER, runner=only_v1) is None
    assert find_compose(PODMAN, runner=only_v1) == V1
    assert only_v1.calls[-1].env == {"DOCKER_HOST": "unix:///run/podman/podman.sock"}

    standalone_v2 = RecordingRunner({r"^docker compose version": fail(), r"^docker-compose version": ok("v2.24.0\n")})
    assert find_compose(DOCKER, runner=standalone_v2) == ComposeCommand(("docker-compose",), "2.24.0")


def test_v1_with_docker_is_refused() -> None:
    with pytest.raises(PrerequisiteError, match="too old"):
        Compose(V1, PROJECT, DOCKER)


def test_compose_runs_through_the_runner_with_the_engine_address() -> None:
    runner = RecordingRunner({r" ps ": ok((FIXTURES / "podman_ps.json").read_text())})
    compose = Compose(V1, PROJECT, PODMAN, runner=runner)
    compose.up()
    assert [c.argv for c in runner.calls] == [up_argv(V1, PROJECT)]
    assert runner.calls[0].env == {"DOCKER_HOST": "unix:///run/podman/podman.sock"}
    # what the podman healthcheck driver runs: running containers that have a healthcheck
    assert compose.healthcheck_containers() == ["rec_db_1", "rec_sick_1", "rec_slow_1"]


def test_parse_recorded_ps_of_the_real_stack_on_podman() -> None:
    """Recorded from `sandbox up --stack-only` on podman (stand-in images): all healthy."""
    states = {s.service: s for s in parse_podman_ps((FIXTURES / "podman_ps_stack.json").read_text())}
    assert set(states) == {
        "postgres", "rabbitmq", "azurite", "airflow-init", "airflow-apiserver", "airflow-scheduler",
        "airflow-dag-processor", "airflow-triggerer", "airflow-worker",
    }
    assert states["airflow-init"].completed
    assert all(s.ok and s.health == "healthy" for name, s in states.items() if name != "airflow-init")
    assert states["airflow-apiserver"].published_ports == (18481,)


def test_parse_recorded_health_log() -> None:
    probe = parse_health((FIXTURES / "podman_inspect_health.json").read_text())
    assert probe is not None and probe.exit_code == 1
    assert probe.output == "Error: No nodes replied within time constraint"
    assert parse_health('{"Status":"starting","FailingStreak":0,"Log":null}') is None
    assert parse_health("null") is None and parse_health("") is None
