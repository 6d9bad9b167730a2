"""The compose CLI: the only code that runs compose. Pure argv builders plus typed `ps` parsing.

Which compose: with Docker, `docker compose` (v2). With podman, a compose v2 binary pointed at
podman's Docker-compatible socket when one is installed, else Debian's `docker-compose` 1.29
(measured here against podman 4.3: healthchecks, `depends_on` conditions, named volumes,
external networks and profiles all work). podman-compose was not chosen: it maps
`service_healthy` onto `podman wait --condition=healthy`, and its container labels differ.

`ps` comes from `compose ps --all --format json` with v2 (a JSON array before v2.21, one object
a line since) and from `podman ps --format json` filtered on the compose project label with
v1, which has no JSON output.
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

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
COMPOSE_V2_HINT = "install Docker Compose v2 (`docker compose version` must work): https://docs.docker.com/compose/install/"


@dataclass(frozen=True)
class ComposeCommand:
    """How to invoke compose: argv prefix and its major version (1 = docker-compose 1.x)."""

    argv: tuple[str, ...]
    version: str

    @property
    def major(self) -> int:
        match = re.match(r"v?(\d+)", self.version)
        return int(match[1]) if match else 0


def version_argv(prefix: Sequence[str]) -> list[str]:
    return [*prefix, "version", "--short"]


def find_compose(runtime: Runtime, *, runner: Runner = run) -> ComposeCommand | None:
    """The compose implementation to use with this runtime, or None when there is none."""
    candidates: list[tuple[str, ...]] = [("docker", "compose"), ("docker-compose",)]
    for prefix in candidates:
        try:
            result = runner(version_argv(prefix), env=runtime.env, check=False, timeout=30)
        except ToolMissing:
            continue
        version = last_line(result.stdout)
        if result.returncode != 0 or not re.match(r"v?\d+\.", version):
            continue
        command = ComposeCommand(prefix, version.lstrip("v"))
        if command.major >= 2 or runtime.name == "podman":
            return command
    return None


_HEALTH_IN_STATUS = re.compile(r"\((healthy|unhealthy|starting|health: starting)\)")


def _health_from_status(status: str) -> str:
    match = _HEALTH_IN_STATUS.search(status)
    if not match:
        return ""
    return "starting" if "starting" in match[1] else match[1]


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
                health=str(doc.get("Health", "") or _health_from_status(str(doc.get("Status", "")))),
                exit_code=int(doc.get("ExitCode") or 0),
                published_ports=tuple(ports),
            )
        )
    return sorted(states, key=lambda s: (s.service, s.container))


def parse_podman_ps(stdout: str) -> list[ServiceState]:
    """`podman ps -a --format json` (health only inside Status, e.g. "Up 2 minutes (healthy)")."""
    states = []
    for doc in _json_documents(stdout):
        labels = doc.get("Labels") or {}
        names = doc.get("Names") or [""]
        ports = sorted({int(p["host_port"]) for p in doc.get("Ports") or [] if p.get("host_port")})
        states.append(
            ServiceState(
                service=str(labels.get(SERVICE_LABEL, "")),
                container=str(names[0]),
                state=str(doc.get("State", "")).lower(),
                health=_health_from_status(str(doc.get("Status", ""))),
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


def up_argv(command: ComposeCommand, project: ComposeProject) -> list[str]:
    return [*command.argv, *project.global_args(), "up", "-d"]


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


def ps_argv(command: ComposeCommand, project: ComposeProject, runtime_cli: str) -> list[str]:
    if command.major >= 2:
        return [*command.argv, *project.global_args(), "ps", "--all", "--format", "json"]
    return [runtime_cli, "ps", "--all", "--format", "json", "--filter", f"label={PROJECT_LABEL}={project.name}"]


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
        if self.command.major < 2 and self.runtime.name != "podman":
            raise PrerequisiteError(f"docker-compose {self.command.version} is too old for Docker", hint=COMPOSE_V2_HINT)
        self._env = self.runtime.env

    def _run(self, argv: list[str], **kwargs: Any) -> Completed:
        return self.runner(argv, env=self._env, cwd=self.cwd, **kwargs)

    def up(self, *, on_line: Callable[[str], None] | None = None, timeout: float | None = None) -> None:
        self._run(up_argv(self.command, self.project), on_line=on_line, timeout=timeout)

    def down(self, *, volumes: bool = False, on_line: Callable[[str], None] | None = None) -> None:
        self._run(down_argv(self.command, self.project, volumes=volumes), on_line=on_line)

    def ps(self) -> list[ServiceState]:
        result = self._run(ps_argv(self.command, self.project, self.runtime.cli), timeout=60)
        return parse_ps_v2(result.stdout) if self.command.major >= 2 else parse_podman_ps(result.stdout)

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
