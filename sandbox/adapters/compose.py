"""The compose CLI: the only code that runs compose. Pure argv builders plus typed `ps` parsing.

Compose v2 only, as `docker compose` (the CLI plugin Docker Desktop and Docker's packages
install) or as a standalone `docker-compose` v2 binary; with podman either one is pointed at
podman's Docker-compatible socket through DOCKER_HOST. Compose v1 (`docker-compose` 1.x, Python)
has had no release since 1.29.2 and reached end of life in July 2023
(https://docs.docker.com/compose/releases/migrate/); `find_compose` still returns it so
`doctor` can say what to install, and `Compose` refuses it. What v2 changed for this module,
measured with v2.40.3 against podman 4.3 (tests/fixtures/compose/): `ps --all --format json`
prints one object a line (a JSON array before v2.21) with `Health` and `Publishers`; containers
are named `<project>-<service>-1` (v1: underscores).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.adapters.runtime import Runtime
from sandbox.errors import PrerequisiteError, SandboxError, ToolMissing
from sandbox.models import ServiceState
from sandbox.proc import Completed, Runner, run
from sandbox.text import last_line

COMPOSE_V2_HINT = (
    "install Docker Compose v2 (`docker compose version` or `docker-compose version` must print v2.x): "
    "https://docs.docker.com/compose/install/linux/"
)


@dataclass(frozen=True)
class ComposeCommand:
    """How to invoke compose: argv prefix and the version it reported (1.x = Compose v1)."""

    argv: tuple[str, ...]
    version: str

    @property
    def major(self) -> int:
        match = re.match(r"v?(\d+)", self.version)
        return int(match[1]) if match else 0


def version_argv(prefix: Sequence[str]) -> list[str]:
    return [*prefix, "version", "--short"]


def find_compose(runtime: Runtime, *, runner: Runner = run) -> ComposeCommand | None:
    """The first Compose v2 that answers; else the first older compose found (doctor names it as
    end of life and `Compose` refuses it); None when there is none."""
    too_old = None
    for prefix in (("docker", "compose"), ("docker-compose",)):
        try:
            result = runner(version_argv(prefix), env=runtime.env, check=False, timeout=30)
        except ToolMissing:
            continue
        version = last_line(result.stdout)
        if result.returncode != 0 or not re.match(r"v?\d+\.", version):
            continue
        command = ComposeCommand(prefix, version.lstrip("v"))
        if command.major >= 2:
            return command
        too_old = too_old or command
    return too_old


def _json_documents(stdout: str) -> list[dict[str, Any]]:
    text = stdout.strip()
    if not text:
        return []
    if text.startswith("["):
        return list(json.loads(text))
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def parse_ps_v2(stdout: str) -> list[ServiceState]:
    """`docker compose ps --all --format json` (array before v2.21, NDJSON after)."""
    states = []
    for doc in _json_documents(stdout):
        ports = sorted({int(p["PublishedPort"]) for p in doc.get("Publishers") or [] if p.get("PublishedPort")})
        states.append(
            ServiceState(
                service=str(doc.get("Service", "")),
                container=str(doc.get("Name", "")),
                state=str(doc.get("State", "")).lower(),
                health=str(doc.get("Health") or ""),  # against podman, Status never says "(healthy)"
                exit_code=int(doc.get("ExitCode") or 0),
                published_ports=tuple(ports),
            )
        )
    return sorted(states, key=lambda s: (s.service, s.container))


@dataclass(frozen=True)
class ComposeProject:
    """Everything that names one compose invocation: project, files, env file, profiles."""

    name: str
    files: tuple[Path, ...]
    env_file: Path
    profiles: tuple[str, ...] = ()

    def global_args(self) -> list[str]:
        args = ["-p", self.name]
        for path in self.files:
            args += ["-f", str(path)]
        args += ["--env-file", str(self.env_file)]
        for profile in self.profiles:
            args += ["--profile", profile]
        return args


def up_argv(command: ComposeCommand, project: ComposeProject, *, no_recreate: bool = False) -> list[str]:
    """`up -d`; `no_recreate` when nothing compose reads changed: against podman 4.3, v2
    recreates every running container on each `up` (podman's container list gives the network's
    name as `NetworkID`, and v2 recreates a running container whose networks do not match by ID:
    `checkExpectedNetworks` in docker/compose pkg/compose/convergence.go), which would restart
    Postgres and kill running tasks only to start one stopped service."""
    return [*command.argv, *project.global_args(), "up", "-d", *(["--no-recreate"] if no_recreate else [])]


def down_argv(command: ComposeCommand, project: ComposeProject, *, volumes: bool = False) -> list[str]:
    argv = [*command.argv, *project.global_args(), "down", "--remove-orphans"]
    return argv + ["--volumes"] if volumes else argv


def logs_argv(
    command: ComposeCommand, project: ComposeProject, services: Sequence[str] = (), *, tail: int | None = None, follow: bool = False
) -> list[str]:
    argv = [*command.argv, *project.global_args(), "logs", "--no-color"]
    if tail is not None:
        argv += ["--tail", str(tail)]
    if follow:
        argv.append("-f")
    return argv + list(services)


def ps_argv(command: ComposeCommand, project: ComposeProject) -> list[str]:
    return [*command.argv, *project.global_args(), "ps", "--all", "--format", "json"]


def exec_argv(
    command: ComposeCommand, project: ComposeProject, service: str, argv: Sequence[str], *, tty: bool
) -> list[str]:
    """`compose exec`; without a terminal, -T (no pseudo-TTY) so output pipes cleanly."""
    return [*command.argv, *project.global_args(), "exec", *([] if tty else ["-T"]), service, *argv]


def health_argv(runtime_cli: str, container: str) -> list[str]:
    return [runtime_cli, "inspect", "--format", "{{json .State.Health}}", container]


@dataclass(frozen=True)
class HealthProbe:
    """The latest run of a container's healthcheck, as `inspect` keeps it."""

    exit_code: int
    output: str


def parse_health(stdout: str) -> HealthProbe | None:
    """`inspect --format '{{json .State.Health}}'` (Docker and podman alike); None without runs."""
    try:
        health = json.loads(stdout)
    except ValueError:
        return None
    runs = (health or {}).get("Log") or []
    if not runs:
        return None
    last = runs[-1]
    return HealthProbe(int(last.get("ExitCode", 0)), str(last.get("Output") or "").strip())


def config_argv(command: ComposeCommand, project: ComposeProject, *, services: bool = False) -> list[str]:
    argv = [*command.argv, *project.global_args(), "config"]
    return argv + ["--services"] if services else argv


@dataclass
class Compose:
    """One project's compose CLI on one runtime; every call goes through `runner`."""

    command: ComposeCommand
    project: ComposeProject
    runtime: Runtime
    runner: Runner = run
    cwd: Path | None = None
    _env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        if self.command.major < 2:
            raise PrerequisiteError(f"docker-compose {self.command.version} is Compose v1 (end of life)", hint=COMPOSE_V2_HINT)
        self._env = self.runtime.env

    def _run(self, argv: list[str], **kwargs: Any) -> Completed:
        return self.runner(argv, env=self._env, cwd=self.cwd, **kwargs)

    def up(self, *, on_line: Callable[[str], None] | None = None, timeout: float | None = None, no_recreate: bool = False) -> None:
        self._run(up_argv(self.command, self.project, no_recreate=no_recreate), on_line=on_line, timeout=timeout)

    def down(self, *, volumes: bool = False, on_line: Callable[[str], None] | None = None) -> None:
        self._run(down_argv(self.command, self.project, volumes=volumes), on_line=on_line)

    def ps(self) -> list[ServiceState]:
        return parse_ps_v2(self._run(ps_argv(self.command, self.project), timeout=60).stdout)

    def logs(self, services: Sequence[str] = (), *, tail: int | None = None) -> str:
        return self._run(logs_argv(self.command, self.project, services, tail=tail), check=False, timeout=60).stdout

    def follow_logs(self, services: Sequence[str], *, tail: int | None, on_line: Callable[[str], None]) -> None:
        self._run(logs_argv(self.command, self.project, services, tail=tail, follow=True), on_line=on_line, check=False)

    def exec(self, service: str, argv: Sequence[str], *, tty: bool) -> int:
        """Run argv in the service's running container on this terminal; its exit code."""
        argv = exec_argv(self.command, self.project, service, argv, tty=tty)
        return self._run(argv, check=False, inherit_stdio=True).returncode

    def last_health_probe(self, container: str) -> HealthProbe | None:
        """Why a healthcheck fails: its last exit code and output (None when unknown)."""
        try:
            result = self._run(health_argv(self.runtime.cli, container), check=False, timeout=60)
        except SandboxError:
            return None
        return parse_health(result.stdout) if result.returncode == 0 else None

    def services(self) -> list[str]:
        """The services the files define (active profiles only)."""
        return [s for s in self._run(config_argv(self.command, self.project, services=True), timeout=60).stdout.split() if s]

    def healthcheck_containers(self) -> list[str]:
        """Running containers with a healthcheck: what a podman healthcheck driver runs."""
        try:
            return [s.container for s in self.ps() if s.state == "running" and s.has_healthcheck]
        except SandboxError:
            return []
