"""The container runtime: Docker or podman, found by asking their API sockets.

`auto` picks Docker when a Docker daemon answers, else podman's Docker-compatible socket
(rootful /run/podman/podman.sock, rootless $XDG_RUNTIME_DIR/podman/podman.sock). The result
says where the docker SDK connects, how kind selects its provider, the UID Airflow containers
run as, and whether the sandbox must run healthchecks itself (podman without systemd never
runs them: its timers are systemd units).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from threading import Event
from typing import Any, Iterator, Literal
from urllib.parse import urlparse

from sandbox.config import Settings
from sandbox.errors import PrerequisiteError
from sandbox.proc import Completed, Runner, run
RuntimeName = Literal["docker", "podman"]
# An absent or dead socket fails at once (no file, connection refused); this bounds only a socket
# that accepted. Measured: podman 4.3's /version and /info took 3.9 s and 4.4 s on a loaded
# 2-core machine, and a 3 s limit made `sandbox status` call a busy podman "not answering".
PROBE_TIMEOUT_S = 20.0
ROOTFUL_PODMAN_SOCKET = "/run/podman/podman.sock"
DOCKER_SOCKET = "/var/run/docker.sock"


@dataclass(frozen=True)
class Engine:
    """What an API socket answered to GET /version and /info."""

    base_url: str
    is_podman: bool
    version: str
    mem_total: int  # bytes the engine (or its VM) can give containers
    root_dir: str  # where images and volumes live, as the engine sees it
    rootless: bool
    os: str
    cgroup_version: str = ""


@dataclass(frozen=True)
class Runtime:
    name: RuntimeName
    engine: Engine
    airflow_uid: int  # Airflow containers run as this UID with GID 0 (see compose file)
    drives_healthchecks: bool  # podman without systemd: the sandbox runs the checks itself

    @property
    def base_url(self) -> str:
        """For the docker SDK (`DockerClient(base_url=...)`) and DOCKER_HOST."""
        return self.engine.base_url

    @property
    def env(self) -> dict[str, str]:
        """Environment for tools that talk to the engine (compose)."""
        return {"DOCKER_HOST": self.base_url}

    @property
    def kind_provider(self) -> str | None:
        """kind's KIND_EXPERIMENTAL_PROVIDER; None is kind's default (docker)."""
        return "podman" if self.name == "podman" else None

    @property
    def cli(self) -> str:
        return self.name


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def _get_json(base_url: str, path: str, timeout: float) -> Any:
    """GET an engine API path over unix:// or tcp://; raises OSError when nothing answers."""
    url = urlparse(base_url)
    if url.scheme == "unix":
        conn: http.client.HTTPConnection = _UnixHTTPConnection(url.path, timeout)
    elif url.scheme in ("tcp", "http"):
        conn = http.client.HTTPConnection(url.hostname or "localhost", url.port or 2375, timeout=timeout)
    else:
        raise OSError(f"cannot probe {base_url}: only unix:// and tcp:// engine addresses are supported")
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise OSError(f"{base_url}{path} answered HTTP {response.status}")
        return json.loads(body)
    except (http.client.HTTPException, ValueError) as exc:
        raise OSError(f"{base_url}{path}: {exc}") from exc
    finally:
        conn.close()


def parse_engine(base_url: str, version: Mapping[str, Any], info: Mapping[str, Any]) -> Engine:
    """Build an Engine from the /version and /info documents (recorded in tests/fixtures/compose)."""
    components = [str(c.get("Name", "")) for c in version.get("Components") or []]
    is_podman = any("podman" in c.lower() for c in components) or "podman" in str(
        (version.get("Platform") or {}).get("Name", "")
    ).lower()
    security = [str(s) for s in info.get("SecurityOptions") or []]
    return Engine(
        base_url=base_url,
        is_podman=is_podman,
        version=str(version.get("Version", "")),
        mem_total=int(info.get("MemTotal") or 0),
        root_dir=str(info.get("DockerRootDir") or ""),
        rootless=bool(info.get("Rootless")) or any("rootless" in s for s in security),
        os=str(info.get("OperatingSystem") or ""),
        cgroup_version=str(info.get("CgroupVersion") or ""),
    )


def probe(base_url: str, *, timeout: float = PROBE_TIMEOUT_S) -> Engine | None:
    """The engine answering at base_url, or None when nothing does."""
    try:
        return parse_engine(base_url, _get_json(base_url, "/version", timeout), _get_json(base_url, "/info", timeout))
    except OSError:
        return None


def docker_candidates(environ: Mapping[str, str]) -> list[str]:
    """Where a Docker daemon may listen: DOCKER_HOST, the system socket, Docker Desktop's."""
    found = [environ["DOCKER_HOST"]] if environ.get("DOCKER_HOST") else []
    found.append(f"unix://{DOCKER_SOCKET}")
    if environ.get("HOME"):
        found.append(f"unix://{environ['HOME']}/.docker/run/docker.sock")
    return list(dict.fromkeys(found))


def podman_candidates(environ: Mapping[str, str]) -> list[str]:
    """Where podman's Docker-compatible API may listen, most specific first."""
    found = [environ[key] for key in ("CONTAINER_HOST", "DOCKER_HOST") if environ.get(key, "").startswith("unix://")]
    if environ.get("XDG_RUNTIME_DIR"):
        rootless = f"unix://{environ['XDG_RUNTIME_DIR']}/podman/podman.sock"
        rootful = f"unix://{ROOTFUL_PODMAN_SOCKET}"
        found += [rootful, rootless] if _is_root() else [rootless, rootful]
    else:
        found.append(f"unix://{ROOTFUL_PODMAN_SOCKET}")
    return list(dict.fromkeys(found))


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def host_uid() -> int:
    return os.getuid() if hasattr(os, "getuid") else 50000


def has_systemd(root: Path = Path("/")) -> bool:
    return (root / "run/systemd/system").is_dir()


DOCKER_HINT = "start Docker (Docker Desktop, or `sudo systemctl start docker`), or use podman: `runtime = \"podman\"`"


def podman_socket_hint(systemd: bool) -> str:
    if systemd:
        return (
            "start podman's API socket: `systemctl --user enable --now podman.socket` (rootless) or "
            "`sudo systemctl enable --now podman.socket` (rootful)"
        )
    return f"start podman's API socket: `podman system service --time=0 unix://{ROOTFUL_PODMAN_SOCKET} &` (as root)"


def detect_runtime(
    settings: Settings,
    *,
    environ: Mapping[str, str] | None = None,
    prober: Callable[[str], Engine | None] = probe,
    systemd: bool | None = None,
) -> Runtime:
    """The runtime the settings ask for (auto|docker|podman) that really answers, or a clear error."""
    environ = os.environ if environ is None else environ
    systemd = has_systemd() if systemd is None else systemd
    wanted = settings.runtime
    tried: list[str] = []
    if wanted in ("auto", "docker"):
        for url in docker_candidates(environ):
            tried.append(url)
            engine = prober(url)
            if engine is not None and not engine.is_podman:
                return Runtime("docker", engine, airflow_uid=host_uid(), drives_healthchecks=False)
        if wanted == "docker":
            raise PrerequisiteError(
                f"the Docker daemon is not reachable (runtime = \"docker\"; tried {', '.join(tried)})", hint=DOCKER_HINT
            )
    for url in podman_candidates(environ):
        tried.append(url)
        engine = prober(url)
        if engine is not None and engine.is_podman:
            # Rootless podman maps the host user to root inside containers: UID 0 there is the
            # host user, the only UID that can read the 0600 files mounted from .sandbox/.
            uid = 0 if engine.rootless else host_uid()
            return Runtime("podman", engine, airflow_uid=uid, drives_healthchecks=not systemd)
    if wanted == "podman":
        raise PrerequisiteError(
            f"podman's API socket is not answering (runtime = \"podman\"; tried {', '.join(dict.fromkeys(tried))})",
            hint=podman_socket_hint(systemd),
        )
    raise PrerequisiteError(
        "no container engine is reachable: neither a Docker daemon nor podman's API socket answers "
        f"(tried {', '.join(dict.fromkeys(tried))})",
        hint=f"{DOCKER_HINT}; for podman: {podman_socket_hint(systemd)}",
    )


# --- podman: healthchecks run on demand ----------------------------------------------------


def healthcheck_argv(container: str) -> list[str]:
    return ["podman", "healthcheck", "run", container]


def healthcheck_config_argv(container: str) -> list[str]:
    return ["podman", "inspect", "--format", "{{json .Config.Healthcheck}}", container]


def parse_healthcheck_interval(output: str) -> float | None:
    """Seconds between checks from `podman inspect` (Interval is in nanoseconds); None if unset."""
    try:
        config = json.loads(output or "null")
    except ValueError:
        return None
    interval = (config or {}).get("Interval") if isinstance(config, dict) else None
    return interval / 1e9 if isinstance(interval, (int, float)) and interval > 0 else None


@contextmanager
def driving_healthchecks(
    runtime: Runtime,
    list_containers: Callable[[], Sequence[str]],
    *,
    interval: float = 1.0,
    spacing: float = 5.0,
    runner: Runner = run,
) -> Iterator[None]:
    """While the block runs, keep running the healthcheck of each of `list_containers()`.

    Only when the runtime needs it (podman without systemd); a no-op otherwise. Each container's
    check starts at the interval its healthcheck declares (as Docker would run it; `spacing`
    when none is found), so `retries` keeps its meaning. The pacing goes through wait_until
    with an Event as its sleep, so leaving the block stops it at once.
    """
    if not runtime.drives_healthchecks:
        yield
        return
    import threading
    from concurrent.futures import Future

    from sandbox.waiting import wait_until

    stop = Event()
    pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="sandbox-healthcheck")
    running: dict[str, Future[Completed]] = {}
    started: dict[str, float] = {}
    intervals: dict[str, float] = {}

    def interval_of(name: str) -> float:
        if name not in intervals:
            found = runner(healthcheck_config_argv(name), check=False, timeout=30)
            declared = parse_healthcheck_interval(found.stdout) if found.returncode == 0 else None
            intervals[name] = declared or spacing
        return intervals[name]

    def tick() -> bool:
        # A slow check (`airflow jobs check` takes seconds) must not hold back the others: each
        # container gets a new run once its previous one has finished and its interval passed.
        if stop.is_set():
            return True
        for name in [n for n, f in running.items() if f.done()]:
            del running[name]
        try:
            containers = list_containers()
        except Exception:  # noqa: BLE001 - listing failed this tick; try again on the next
            containers = []
        now = time.monotonic()
        for name in containers:
            if name in running:
                continue
            if name not in started or now - started[name] >= interval_of(name):
                started[name] = now
                running[name] = pool.submit(runner, healthcheck_argv(name), check=False, timeout=120)
        return stop.is_set()

    thread = threading.Thread(
        target=wait_until,
        kwargs=dict(check=tick, what="healthcheck driver", timeout=float("inf"), interval=interval, sleep=stop.wait),
        daemon=True,
        name="sandbox-healthchecks",
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        pool.shutdown(wait=False, cancel_futures=True)


# --- podman: can it start a container at all -------------------------------------------------


@dataclass(frozen=True)
class OciProbe:
    """A throw-away container started from a local image: what a failing OCI runtime shows."""

    image: str | None  # the image tried; None when none of them is present locally
    returncode: int = 0
    output: str = ""


def run_probe_argv(image: str) -> list[str]:
    return ["podman", "run", "--rm", "--pull=never", "--network=none", "--entrypoint", "true", image]


def probe_oci(images: Sequence[str], *, runner: Runner = run) -> OciProbe:
    """Start `true` in the first of `images` podman holds (nothing is pulled)."""
    present = next((i for i in images if runner(["podman", "image", "exists", i], check=False).returncode == 0), None)
    if present is None:
        return OciProbe(None)
    result = runner(run_probe_argv(present), check=False, timeout=120)
    return OciProbe(present, result.returncode, result.stderr or result.stdout)
