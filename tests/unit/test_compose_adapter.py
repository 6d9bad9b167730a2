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
    parse_ps_v2,
    ps_argv,
    up_argv,
)
from sandbox.adapters.runtime import Engine, Runtime
from sandbox.errors import PrerequisiteError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "compose"
V2 = ComposeCommand(("docker", "compose"), "2.29.7")
V1 = ComposeCommand(("docker-compose",), "1.29.2")
STANDALONE = ComposeCommand(("docker-compose",), "2.40.3")
PROJECT = ComposeProject("demo", (Path("/p/compose/docker-compose.yaml"), Path("/p/compose/kind.yaml")), Path("/p/.sandbox/compose.env"))
DOCKER = Runtime("docker", Engine("unix:///var/run/docker.sock", False, "27.3.1", 16 << 30, "/var/lib/docker", False, "linux"), 1000, False)
PODMAN = Runtime("podman", Engine("unix:///run/podman/podman.sock", True, "4.3.1", 16 << 30, "/var/lib/containers/storage", False, "debian"), 0, True)
GLOBAL = ["-p", "demo", "-f", "/p/compose/docker-compose.yaml", "-f", "/p/compose/kind.yaml", "--env-file", "/p/.sandbox/compose.env"]


def test_argv_builders() -> None:
    assert up_argv(V2, PROJECT) == ["docker", "compose", *GLOBAL, "up", "-d"]
    assert up_argv(STANDALONE, PROJECT) == ["docker-compose", *GLOBAL, "up", "-d"]
    assert up_argv(V2, PROJECT, no_recreate=True)[-3:] == ["up", "-d", "--no-recreate"]
    assert down_argv(V2, PROJECT) == ["docker", "compose", *GLOBAL, "down", "--remove-orphans"]
    assert down_argv(V2, PROJECT, volumes=True)[-1] == "--volumes"
    assert logs_argv(V2, PROJECT, ["airflow-worker"], tail=20, follow=True) == [
        "docker", "compose", *GLOBAL, "logs", "--no-color", "--tail", "20", "-f", "airflow-worker",
    ]
    assert logs_argv(V2, PROJECT) == ["docker", "compose", *GLOBAL, "logs", "--no-color"]
    profiled = ComposeProject("demo", PROJECT.files, PROJECT.env_file, ("flower",))
    assert up_argv(V2, profiled)[-4:] == ["--profile", "flower", "up", "-d"]


def test_ps_asks_compose_for_json() -> None:
    assert ps_argv(V2, PROJECT) == ["docker", "compose", *GLOBAL, "ps", "--all", "--format", "json"]


def test_parse_recorded_compose_v2_ps_on_podman() -> None:
    """Real v2.40.3 output against podman 4.3 (the project in compose_v2_ps_podman.compose.yaml).

    Against podman, `Status` never carries "(healthy)": `Health` is the only source.
    """
    states = {s.service: s for s in parse_ps_v2((FIXTURES / "compose_v2_ps_podman.ndjson").read_text())}
    assert set(states) == {"db", "sick", "broken-init", "init", "slow", "plain"}
    assert (states["db"].state, states["db"].health, states["db"].ok) == ("running", "healthy", True)
    assert states["db"].published_ports == (18091,) and states["db"].container == "rec-db-1"
    assert (states["sick"].health, states["sick"].ok) == ("unhealthy", False)
    assert (states["slow"].health, states["slow"].ok) == ("starting", False)
    assert (states["plain"].health, states["plain"].ok, states["plain"].has_healthcheck) == ("", True, False)
    assert states["init"].completed and not states["broken-init"].completed
    assert (states["broken-init"].state, states["broken-init"].exit_code) == ("exited", 3)


def test_parse_compose_v2_ps_array_shape_of_releases_before_2_21() -> None:
    states = {s.service: s for s in parse_ps_v2((FIXTURES / "compose_v2_ps_array.json").read_text())}
    assert states["postgres"].ok and states["postgres"].health == "healthy"
    assert states["postgres"].published_ports == ()
    assert states["airflow-apiserver"].published_ports == (8080,)


def test_parse_empty_ps() -> None:
    assert parse_ps_v2("") == [] and parse_ps_v2("[]\n") == []


def test_find_compose_prefers_the_plugin_and_v2() -> None:
    runner = RecordingRunner({r"^docker compose version": ok("2.29.7\n"), r"^docker-compose version": ok("1.29.2\n")})
    assert find_compose(DOCKER, runner=runner) == V2
    assert runner.calls[0].env == {"DOCKER_HOST": "unix:///var/run/docker.sock"}

    only_v1 = RecordingRunner({r"^docker compose version": fail("docker: unknown flag: --short", 125), r"^docker-compose version": ok("1.29.2\n")})
    assert find_compose(PODMAN, runner=only_v1) == V1  # doctor names it; Compose refuses it
    assert only_v1.calls[-1].env == {"DOCKER_HOST": "unix:///run/podman/podman.sock"}

    v1_plugin_v2_standalone = RecordingRunner({r"^docker compose version": ok("1.29.2\n"), r"^docker-compose version": ok("v2.24.0\n")})
    assert find_compose(PODMAN, runner=v1_plugin_v2_standalone) == ComposeCommand(("docker-compose",), "2.24.0")
    assert find_compose(PODMAN, runner=RecordingRunner({r"version": fail("not found", 127)})) is None

    standalone_v2 = RecordingRunner({r"^docker compose version": fail(), r"^docker-compose version": ok("v2.24.0\n")})
    assert find_compose(PODMAN, runner=standalone_v2) == ComposeCommand(("docker-compose",), "2.24.0")


def test_v1_is_refused() -> None:
    with pytest.raises(PrerequisiteError, match="Compose v1"):
        Compose(V1, PROJECT, PODMAN)


def test_compose_runs_through_the_runner_with_the_engine_address() -> None:
    runner = RecordingRunner({r" ps ": ok((FIXTURES / "compose_v2_ps_podman.ndjson").read_text())})
    compose = Compose(STANDALONE, PROJECT, PODMAN, runner=runner)
    compose.up()
    assert [c.argv for c in runner.calls] == [up_argv(STANDALONE, PROJECT)]
    assert runner.calls[0].env == {"DOCKER_HOST": "unix:///run/podman/podman.sock"}
    # what the podman healthcheck driver runs: running containers that have a healthcheck
    assert compose.healthcheck_containers() == ["rec-db-1", "rec-sick-1", "rec-slow-1"]


def test_parse_recorded_health_log() -> None:
    probe = parse_health((FIXTURES / "podman_inspect_health.json").read_text())
    assert probe is not None and probe.exit_code == 1
    assert probe.output == "Error: No nodes replied within time constraint"
    assert parse_health('{"Status":"starting","FailingStreak":0,"Log":null}') is None
    assert parse_health("null") is None and parse_health("") is None
