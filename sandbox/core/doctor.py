"""`sandbox doctor`: what the host must provide, each problem one line (what, why, how to fix).

`up` runs these first and stops on a "fail"; a "warn" is shown and `up` goes on (a missing
kind/kubectl is a warn: `up` downloads the pinned release itself); a "skip" is a check that could
not run yet. The checks take values; `examine` asks the command's adapters for them.
"""

from __future__ import annotations

import errno
import shutil
import socket
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sandbox.adapters.compose import COMPOSE_V2_HINT, ComposeCommand
from sandbox.adapters.runtime import OciProbe, Runtime, has_systemd, podman_socket_hint
from sandbox.config import Settings
from sandbox.errors import PrerequisiteError, SandboxError
from sandbox.state import StateDir
from sandbox.text import last_line

if TYPE_CHECKING:
    from sandbox.core.wiring import Adapters

Status = Literal["ok", "warn", "skip", "fail"]
MIN_MEMORY_MIB = 4000  # the official Airflow compose guide's minimum
GOOD_MEMORY_MIB = 8000
MIN_DISK_GB = 2
GOOD_DISK_GB = 10
_MIB = 1 << 20
_GB = 10**9


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    what: str
    why: str = ""
    fix: str = ""

    def to_json(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Report:
    checks: tuple[Check, ...]
    runtime: Runtime | None = None

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "runtime": self.runtime.name if self.runtime else None,
            "checks": [c.to_json() for c in self.checks],
        }


# --- individual checks (each testable against real conditions) ------------------------------


def check_runtime(settings: Settings, runtime: Runtime | PrerequisiteError) -> Check:
    """`runtime`: the engine that answered, or the error saying none did."""
    if isinstance(runtime, PrerequisiteError):
        exc = runtime
        if settings.runtime != "docker" and shutil.which("podman") and not shutil.which("docker"):
            return Check(
                "runtime", "fail", "podman is installed but its API socket is not answering",
                "the sandbox drives podman through its Docker-compatible API", podman_socket_hint(has_systemd()),
            )
        return Check("runtime", "fail", exc.message, "containers run on Docker or podman", exc.hint or "")
    engine = runtime.engine
    mode = " (rootless)" if engine.rootless else ""
    return Check("runtime", "ok", f"{runtime.name} {engine.version}{mode} at {engine.base_url}")


def check_memory(runtime: Runtime) -> Check:
    mib = runtime.engine.mem_total // _MIB
    what = f"{runtime.name} can give containers {mib} MiB of memory"
    if mib < MIN_MEMORY_MIB:
        fix = (
            "raise the memory of Docker Desktop (Settings > Resources) or of the podman machine "
            "(`podman machine set --memory 8192`) to at least 4 GB"
        )
        return Check("memory", "fail", what, "Airflow's services need at least 4 GB", fix)
    if mib < GOOD_MEMORY_MIB:
        return Check("memory", "warn", what, "Airflow plus the kind cluster run best with 8 GB", "give the engine 8 GB if you can")
    return Check("memory", "ok", what)


def check_compose(runtime: Runtime, command: ComposeCommand | None) -> Check:
    why = "the Airflow stack is a Compose v2 project"
    if command is None:
        return Check("compose", "fail", "Docker Compose v2 not found", why, COMPOSE_V2_HINT)
    found = f"`{' '.join(command.argv)}` {command.version}"
    if command.major < 2:
        return Check("compose", "fail", f"{found} is Compose v1, which reached end of life in July 2023", why, COMPOSE_V2_HINT)
    return Check("compose", "ok", found)


def check_tool(name: str, found: Path | SandboxError | None) -> Check:
    """`found`: the usable binary, None when there is none, or the error looking for it."""
    if isinstance(found, SandboxError):
        return Check(name, "warn", found.message, fix=found.hint or "")
    if found is None:
        return Check(
            name, "warn", f"{name} not found or older than the supported version",
            "the sandbox drives the cluster with it", f"nothing to do: `sandbox up` downloads the pinned {name} into .sandbox/tools",
        )
    return Check(name, "ok", f"{name} at {found}")


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a socket can bind host:port now (what publishing the port will need)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def check_ports(ports: Sequence[tuple[str, int]], own: Collection[int] = ()) -> list[Check]:
    """Each host port must be free, unless this sandbox's own stack already publishes it."""
    checks = []
    for name, port in ports:
        if port in own:
            checks.append(Check(f"port {port}", "ok", f"127.0.0.1:{port} ({name}) is published by this sandbox"))
        elif port_free(port):
            checks.append(Check(f"port {port}", "ok", f"127.0.0.1:{port} ({name}) is free"))
        else:
            key = name.upper()
            checks.append(
                Check(
                    f"port {port}", "fail", f"port {port} on 127.0.0.1 ({name}) is already in use",
                    "the sandbox publishes it there",
                    f"stop what uses it (`ss -ltnp 'sport = :{port}'` shows it), or pick another port: "
                    f"SANDBOX_PORT_{key}=<port> or [ports] {name} = <port> in sandbox.toml",
                )
            )
    return checks


def check_disk(paths: Sequence[Path]) -> Check:
    """Free space where images, volumes and the project live (the least of them)."""
    measured = []
    for path in paths:
        probe = path
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        measured.append((shutil.disk_usage(probe).free, path))
    free, where = min(measured)
    what = f"{free / _GB:.1f} GB free at {where}"
    if free < MIN_DISK_GB * _GB:
        return Check("disk", "fail", what, "images and the Postgres volume need several GB", "free disk space (`docker system prune` removes unused images)")
    if free < GOOD_DISK_GB * _GB:
        return Check("disk", "warn", what, f"the Airflow and kind images take about {GOOD_DISK_GB} GB", "free some disk space")
    return Check("disk", "ok", what)


# --- podman specifics -------------------------------------------------------------------------

_OCI_HINTS = (
    ("cgroups in hybrid mode", 'crun cannot run here: set `runtime = "runc"` and `cgroup_manager = "cgroupfs"` under [engine] in /etc/containers/containers.conf'),
    ("setrlimit", 'set `default_ulimits = ["nofile=16384:16384", "nproc=16384:16384"]` under [containers] in /etc/containers/containers.conf'),
    ("oci runtime", 'install the OCI runtime podman names (`apt-get install runc` / `crun`), or set `runtime = "runc"` under [engine] in /etc/containers/containers.conf'),
)


def oci_hint(error: str) -> str:
    lowered = error.lower()
    for needle, hint in _OCI_HINTS:
        if needle in lowered:
            return hint
    return "run `podman --log-level=debug run --rm IMAGE true` to see why; `podman info` shows the configured runtime"


def check_podman_oci(probe: OciProbe) -> Check:
    """Whether podman started a throw-away container: catches a failing OCI runtime."""
    if probe.image is None:
        return Check(
            "oci runtime", "skip", "not checked: none of the stack's images is present locally",
            "podman is tried with an image it already holds (nothing is pulled)",
            "run `sandbox doctor` again after `sandbox up` has pulled the images",
        )
    if probe.returncode == 0:
        return Check("oci runtime", "ok", f"podman starts containers ({probe.image})")
    error = last_line(probe.output, f"exit code {probe.returncode}")
    return Check("oci runtime", "fail", f"podman cannot start a container: {error}", "every service runs in a container", oci_hint(error))


def check_rootless_for_kind(runtime: Runtime, *, cgroup_root: Path = Path("/sys/fs/cgroup"), uid: int | None = None) -> Check | None:
    """kind on rootless podman needs cgroup v2 with cpu and memory delegated to the user."""
    if runtime.name != "podman" or not runtime.engine.rootless:
        return None
    if runtime.engine.cgroup_version and runtime.engine.cgroup_version != "2":
        return Check(
            "rootless", "fail", f"rootless podman on cgroup v{runtime.engine.cgroup_version}",
            "kind's nodes need cgroup v2 under rootless podman",
            "boot with cgroup v2 (systemd.unified_cgroup_hierarchy=1), or use rootful podman, or `sandbox up --stack-only`",
        )
    import os

    uid = os.getuid() if uid is None else uid
    controllers = cgroup_root / f"user.slice/user-{uid}.slice/user@{uid}.service/cgroup.controllers"
    try:
        delegated = controllers.read_text().split()
    except OSError:
        delegated = []
    missing = [c for c in ("cpu", "memory", "pids") if c not in delegated]
    if missing:
        return Check(
            "rootless", "warn", f"cgroup controllers not delegated to your user: {', '.join(missing)}",
            "kind's nodes under rootless podman need them",
            "add `Delegate=yes` for user@.service (see kind's rootless guide), then log in again",
        )
    return Check("rootless", "ok", "rootless podman with cgroup v2 delegation")


# --- the whole report ---------------------------------------------------------------------------


def stack_images() -> list[str]:
    from sandbox.config import AZURITE_IMAGE, POSTGRES_IMAGE, RABBITMQ_IMAGE, airflow_image

    return [POSTGRES_IMAGE, RABBITMQ_IMAGE, airflow_image(), AZURITE_IMAGE]


def published_ports(settings: Settings) -> list[tuple[str, int]]:
    """The host ports `up` publishes (flower only runs under its profile, so not checked)."""
    return [(name, port) for name, port in settings.ports.items() if name != "flower"]


def diagnose(
    settings: Settings,
    *,
    runtime: Runtime | PrerequisiteError,
    compose: ComposeCommand | None = None,
    oci: OciProbe | None = None,
    tools: Mapping[str, Path | SandboxError | None] | None = None,
    own_ports: Collection[int] = (),
    stack_only: bool = False,
) -> Report:
    """Every check, in the order a user fixes them, from what was found on this machine."""
    checks = [check_runtime(settings, runtime)]
    found = runtime if isinstance(runtime, Runtime) else None
    if found is not None:
        checks.append(check_memory(found))
        checks.append(check_compose(found, compose))
        if found.name == "podman":
            checks.append(check_podman_oci(oci or OciProbe(None)))
            if not stack_only:
                rootless = check_rootless_for_kind(found)
                if rootless is not None:
                    checks.append(rootless)
    if not stack_only:
        checks += [check_tool(name, path) for name, path in (tools or {}).items()]
    checks += check_ports(published_ports(settings), own_ports)
    disk_paths = [settings.project_dir]
    if found is not None and found.engine.root_dir and Path(found.engine.root_dir).exists():
        disk_paths.append(Path(found.engine.root_dir))
    checks.append(check_disk(disk_paths))
    return Report(tuple(checks), found)


def examine(settings: Settings, adapters: Adapters, *, stack_only: bool = False) -> Report:
    """diagnose() with what this command's adapters find (each looked for once)."""
    from sandbox.adapters.runtime import probe_oci

    try:
        runtime: Runtime | PrerequisiteError = adapters.runtime
    except PrerequisiteError as exc:
        runtime = exc
    compose = oci = None
    if isinstance(runtime, Runtime):
        compose = adapters.compose_command
        if runtime.name == "podman":
            oci = probe_oci(stack_images(), runner=adapters.runner)
    tools: dict[str, Path | SandboxError | None] = {}
    if not stack_only:
        for name in ("kind", "kubectl"):
            try:
                tools[name] = adapters.tools.find(name)
            except SandboxError as exc:
                tools[name] = exc
    return diagnose(
        settings, runtime=runtime, compose=compose, oci=oci, tools=tools,
        own_ports=own_ports(settings, adapters) if compose is not None else (), stack_only=stack_only,
    )


def own_ports(settings: Settings, adapters: Adapters) -> set[int]:
    """Host ports this sandbox's running stack already publishes (not a conflict for doctor)."""
    from sandbox.core.stack_files import read_mode

    mode = read_mode(StateDir(settings.state_dir)) or "stack-only"
    try:
        return {p for s in adapters.compose(mode).ps() for p in s.published_ports}
    except SandboxError:
        return set()


def require_healthy(report: Report) -> None:
    """Raise the first failure as a PrerequisiteError (what + why, and the fix as hint)."""
    if report.ok:
        return
    first = report.failures[0]
    more = len(report.failures) - 1
    message = first.what + (f" ({first.why})" if first.why else "")
    if more:
        message += f"; {more} more problem(s): run `sandbox doctor`"
    raise PrerequisiteError(message, hint=first.fix or None)
