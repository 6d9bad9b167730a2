"""`sandbox up` / `down` / `status` / `logs`: the whole local stack, each step an idempotent ensure.

up = doctor → secrets → cluster → virtual node → cluster access → policy → blob secret → stack →
images → ready. A step that finds its work done returns at once, so a second `up` only verifies,
and an `up` after a failure or Ctrl-C resumes. `--stack-only` skips every cluster step and the
images; the mode is recorded in .sandbox/stack.json so `down` and `status` know it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sandbox.adapters.compose import Compose, ComposeCommand, ComposeProject, ServiceState, find_compose
from sandbox.adapters.runtime import Runtime, detect_runtime, driving_healthchecks
from sandbox.airflow_config import airflow_env, compose_topology, render_env_file
from sandbox.config import AZURITE_IMAGE, POSTGRES_IMAGE, RABBITMQ_IMAGE, Settings, airflow_image
from sandbox.core import blob
from sandbox.core.doctor import Report, diagnose, require_healthy
from sandbox.errors import CommandFailed, ConfigError, PrerequisiteError, SandboxError, StackError, WaitTimeout
from sandbox.progress import Reporter, SilentReporter
from sandbox.proc import Completed, run
from sandbox.state import ADMIN_USER, Secrets, StateDir, write_private
from sandbox.waiting import NotReady, wait_until

if TYPE_CHECKING:
    from sandbox.adapters.kind import KindCli

Mode = Literal["full", "stack-only"]
Runner = Callable[..., Completed]
RECORD_NAME = "stack.json"
KIND_OVERRIDE = "kind.yaml"  # beside the main compose file
ONE_SHOT = ("airflow-init",)
AZURITE_BLOB_PORT = 10000
LOG_LINES_ON_FAILURE = 20


# --- the state dir record of how the stack was brought up ----------------------------------


def record_path(state: StateDir) -> Path:
    return state.path / RECORD_NAME


def read_mode(state: StateDir) -> Mode | None:
    mode = _record(state).get("mode")
    return mode if mode in ("full", "stack-only") else None


def _record(state: StateDir) -> dict[str, Any]:
    try:
        data = json.loads(record_path(state).read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_mode(state: StateDir, mode: Mode, name: str) -> None:
    wanted = {"mode": mode, "name": name}
    if _record(state) != wanted:
        write_private(record_path(state), json.dumps(wanted))


def check_not_renamed(settings: Settings, state: StateDir) -> None:
    """Refuse to act under a new `name` while containers or a cluster of the old one exist here:
    `up` would start a second sandbox beside them, `down` would stop nothing and lose track."""
    from sandbox.core.cluster import read_record

    cluster = read_record(state)
    recorded = {_record(state).get("name"), cluster.name if cluster else None} - {None}
    old = sorted(str(n) for n in recorded if n != settings.name)
    if old:
        raise ConfigError(
            f"this project's sandbox runs as {old[0]!r}, but the configured name is now {settings.name!r}",
            hint=f"stop the old one first: `SANDBOX_NAME={old[0]} sandbox down` (its data stays unless "
            f"--purge), then `sandbox up`; or set name back to {old[0]!r}",
        )


# --- compose inputs (pure) -----------------------------------------------------------------


def compose_files(settings: Settings, mode: Mode) -> tuple[Path, ...]:
    """The main file users run; plus the kind wiring when a cluster is there; plus the project's
    compose.override.yaml, last so it wins (compose merges later files over earlier ones)."""
    main = settings.compose_file
    files = (main,) if mode == "stack-only" else (main, main.parent / KIND_OVERRIDE)
    return files + ((settings.compose_override,) if settings.compose_override else ())


def azurite_alias(settings: Settings) -> str:
    """Azurite's name on the `kind` network, where task pods resolve it."""
    return f"{settings.name}-azurite"


def pod_blob_endpoint(settings: Settings) -> str:
    return blob.blob_endpoint(azurite_alias(settings), AZURITE_BLOB_PORT)


def compose_variables(
    settings: Settings, state: StateDir, runtime: Runtime, secrets: Secrets, airflow_ref: str | None = None
) -> dict[str, str]:
    """Every ${VAR} the compose files use; rendered into .sandbox/compose.env. `airflow_ref`:
    the Airflow image `up` resolved (official, or extended with airflow_requirements)."""
    return {
        "SANDBOX_AIRFLOW_IMAGE": airflow_ref or airflow_image(),
        "SANDBOX_POSTGRES_IMAGE": POSTGRES_IMAGE,
        "SANDBOX_RABBITMQ_IMAGE": RABBITMQ_IMAGE,
        "SANDBOX_AZURITE_IMAGE": AZURITE_IMAGE,
        "SANDBOX_AIRFLOW_UID": str(runtime.airflow_uid),
        "SANDBOX_AIRFLOW_ENV_FILE": str(state.airflow_env_file),
        "SANDBOX_AIRFLOW_KUBECONFIG": str(state.airflow_kubeconfig),
        "SANDBOX_PASSWORDS_FILE": str(state.passwords_file),
        "SANDBOX_DAGS_DIR": str(settings.dags_folder),
        "SANDBOX_POSTGRES_PASSWORD": secrets.postgres_password,
        "SANDBOX_RABBITMQ_PASSWORD": secrets.rabbitmq_password,
        "SANDBOX_PORT_API": str(settings.ports.api),
        "SANDBOX_PORT_RABBITMQ_UI": str(settings.ports.rabbitmq_ui),
        "SANDBOX_PORT_FLOWER": str(settings.ports.flower),
        "SANDBOX_PORT_AZURITE_BLOB": str(settings.ports.azurite_blob),
        "SANDBOX_AZURITE_ALIAS": azurite_alias(settings),
    }


def _write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text() == text and not (path.stat().st_mode & 0o077):
        return False
    write_private(path, text)
    return True


def render_stack_files(
    settings: Settings, state: StateDir, runtime: Runtime, mode: Mode, airflow_ref: str | None = None
) -> bool:
    """Write .sandbox/airflow.env and .sandbox/compose.env (0600); True when either changed."""
    secrets = state.secrets()
    env = airflow_env(settings, secrets, compose_topology(settings, with_cluster=mode == "full"))
    changed = _write_if_changed(state.airflow_env_file, render_env_file(env))
    variables = compose_variables(settings, state, runtime, secrets, airflow_ref)
    changed |= _write_if_changed(state.compose_env_file, render_env_file(variables))
    return changed


# --- adapters ----------------------------------------------------------------------------------


@dataclass
class Adapters:
    """The external systems `up`/`down`/`status` talk to; tests pass recording fakes."""

    runtime: Runtime
    compose_command: ComposeCommand | None
    runner: Runner = run
    kube_factory: Callable[[Path], Any] | None = None  # admin kubeconfig -> KubeApi
    tool: Callable[[str, Settings, Reporter], str] | None = None  # finds/downloads kind, kubectl
    build_images: Callable[..., Any] | None = None  # images.build_and_load
    image_engine: Callable[[], Any] | None = None  # -> images.ImageEngine (the docker SDK)
    api_health: Callable[[str], dict[str, Any]] | None = None
    doctor: Callable[..., Report] = diagnose
    _kind: KindCli | None = field(default=None, init=False)

    def compose(self, settings: Settings, mode: Mode) -> Compose:
        if self.compose_command is None:
            raise PrerequisiteError("no usable compose implementation found", hint="run `sandbox doctor`")
        state = StateDir(settings.state_dir)
        project = ComposeProject(settings.compose_project, compose_files(settings, mode), state.compose_env_file)
        return Compose(self.compose_command, project, self.runtime, runner=self.runner, cwd=settings.project_dir)

    def kind(self, settings: Settings, reporter: Reporter, *, download: bool = True) -> KindCli:
        if self._kind is None:
            from sandbox.adapters.kind import KindCli

            binary = self.ensure_tool("kind", settings, reporter) if download else self.find_tool("kind", settings)
            self._kind = KindCli(binary, provider=self.runtime.kind_provider, runner=self.runner)
        return self._kind

    def ensure_tool(self, name: str, settings: Settings, reporter: Reporter) -> str:
        """The tool's path, downloading the pinned release when missing or of an unsupported version."""
        if self.tool is not None:
            return self.tool(name, settings, reporter)
        from sandbox.core.tools import ensure_tool

        return str(ensure_tool(name, settings, reporter_info=reporter.info))

    def find_tool(self, name: str, settings: Settings) -> str:
        """The tool's path without downloading (plain name when absent: the call then says so)."""
        if self.tool is not None:
            return self.tool(name, settings, SilentReporter())
        from sandbox.core.tools import find_tool

        found = find_tool(name, settings)
        return str(found) if found else name

    def images(self) -> Any:
        """The engine's image API (build, inspect) for this runtime."""
        if self.image_engine is not None:
            return self.image_engine()
        from sandbox.adapters.docker_images import DockerImages

        return DockerImages(self.runtime.base_url)

    def kube(self, path: Path) -> Any:
        if self.kube_factory is not None:
            return self.kube_factory(path)
        from sandbox.adapters.kube import KubeApi

        return KubeApi.from_kubeconfig(path)

    def health(self, base_url: str) -> dict[str, Any]:
        if self.api_health is not None:
            return self.api_health(base_url)
        from sandbox.adapters.airflow_api import fetch_health

        return fetch_health(base_url)


def connect(settings: Settings, *, runner: Runner = run) -> Adapters:
    """The real adapters for this machine: the runtime that answers and its compose."""
    runtime = detect_runtime(settings)
    return Adapters(runtime, find_compose(runtime, runner=runner), runner=runner)


# --- up ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UpResult:
    mode: Mode
    url: str
    user: str
    password: str
    services: tuple[ServiceState, ...]
    images: Any = None


def up(settings: Settings, reporter: Reporter, *, stack_only: bool = False, adapters: Adapters | None = None) -> UpResult:
    """Bring everything up (or verify it is): safe to run again at any time."""
    state = StateDir(settings.state_dir)
    mode: Mode = "stack-only" if stack_only else "full"
    with state.lock("up"):
        check_not_renamed(settings, state)
        with reporter.step("check prerequisites"):
            adapters = adapters or connect(settings)
            report = adapters.doctor(
                settings, stack_only=stack_only, own_ports=own_ports(adapters, settings), detect=lambda _s: adapters.runtime, runner=adapters.runner
            )
            for check in report.checks:
                if check.status == "warn":
                    reporter.info(f"warning: {check.what}" + (f" — {check.fix}" if check.fix else ""))
            require_healthy(report)
        secrets = state.secrets()
        kind = None
        if stack_only:
            previous = read_mode(state)
            if previous == "full":
                reporter.info(f"switching to --stack-only: cluster {settings.cluster_name} is left as it is (`sandbox down` removes it)")
        else:
            kind = _ensure_cluster_side(settings, state, reporter, adapters)
        write_mode(state, mode, settings.name)
        services = ensure_stack(settings, state, reporter, adapters, mode)
        images = None
        if not stack_only:
            images = _ensure_images(settings, reporter, adapters, kind)
        return UpResult(mode, settings.api_url, ADMIN_USER, secrets.admin_password, tuple(services), images)


def own_ports(adapters: Adapters, settings: Settings) -> set[int]:
    """Host ports this sandbox's running stack already publishes (not a conflict for doctor)."""
    if adapters.compose_command is None:
        return set()
    mode = read_mode(StateDir(settings.state_dir)) or "stack-only"
    try:
        return {p for s in adapters.compose(settings, mode).ps() for p in s.published_ports}
    except SandboxError:
        return set()


def _ensure_cluster_side(settings: Settings, state: StateDir, reporter: Reporter, adapters: Adapters) -> KindCli:
    from sandbox.core.access import ensure_cluster_access
    from sandbox.core.cluster import ensure_cluster, ensure_virtual_node
    from sandbox.core.policy import policy_manifests

    with reporter.step("tools (kind, kubectl)"):
        kind = adapters.kind(settings, reporter)
        adapters.ensure_tool("kubectl", settings, reporter)
    ensure_cluster(settings, kind, state, reporter)
    kube = adapters.kube(state.admin_kubeconfig)
    ensure_virtual_node(settings, kube, reporter)
    ensure_cluster_access(settings, kube, state, reporter)
    with reporter.step(f"policy ({settings.profile})"):
        for manifest in policy_manifests(settings.profile):
            kube.apply(manifest)
    with reporter.step("blob storage secret"):
        kube.apply(blob.blob_secret_manifest(settings.task_namespace, pod_blob_endpoint(settings)))
    return kind


def _ensure_images(settings: Settings, reporter: Reporter, adapters: Adapters, kind: KindCli | None) -> Any:
    if adapters.build_images is not None:
        return adapters.build_images(settings, reporter, kind=kind)
    from sandbox.core.images import build_and_load

    return build_and_load(settings, reporter, client=adapters.images(), kind=kind)


def stack_fingerprint(files: Sequence[Path], state: StateDir) -> str:
    """What compose would act on: the compose files and both rendered env files."""
    import hashlib

    digest = hashlib.sha256()
    for path in (*files, state.compose_env_file, state.airflow_env_file):
        digest.update(str(path).encode() + b"\0" + (path.read_bytes() if path.exists() else b"") + b"\0")
    return digest.hexdigest()


def _fingerprint_path(state: StateDir) -> Path:
    return state.path / "stack.fingerprint"


def ensure_stack(settings: Settings, state: StateDir, reporter: Reporter, adapters: Adapters, mode: Mode) -> list[ServiceState]:
    """Render the env files, `compose up -d`, and wait until every service is healthy.

    When nothing compose reads changed since the last healthy `up` and every service is
    healthy, compose is not run at all: a second `up` only verifies.
    """
    state.ensure()
    from sandbox.core.airflow_image import ensure_airflow_image

    airflow_ref = ensure_airflow_image(settings, adapters.images(), reporter)  # official without requirements
    if render_stack_files(settings, state, adapters.runtime, mode, airflow_ref):
        reporter.info(f"rendered {state.airflow_env_file} and {state.compose_env_file}")
    compose = adapters.compose(settings, mode)
    fingerprint = stack_fingerprint(compose.project.files, state)
    recorded = _fingerprint_path(state)
    if recorded.exists() and recorded.read_text() == fingerprint:
        with reporter.step("verify the Airflow stack"):
            try:
                states = _all_healthy(compose, _expected_services(compose))
            except (NotReady, StackError, CommandFailed):
                states = None
        if states is not None:
            return states
    recorded.unlink(missing_ok=True)
    with driving_healthchecks(adapters.runtime, compose.healthcheck_containers, runner=adapters.runner):
        with reporter.step("airflow stack (compose up)"):
            try:
                compose.up(on_line=reporter.output, timeout=settings.timeouts.stack_up)
            except CommandFailed as exc:
                raise _stack_failure(compose, exc) from None
        with reporter.step("wait for every service to be healthy"):
            expected = _expected_services(compose)
            try:
                states = wait_until(
                    lambda: _all_healthy(compose, expected),
                    what="every compose service to be healthy",
                    timeout=settings.timeouts.stack_healthy,
                    interval=2.0,
                    transient=(CommandFailed,),
                )
            except WaitTimeout as exc:
                raise _stack_failure(compose, exc) from None
    write_private(recorded, fingerprint)
    return states


def _expected_services(compose: Compose) -> list[str]:
    return [s for s in compose.services() if s != "flower"]


def _all_healthy(compose: Compose, expected: Sequence[str]) -> list[ServiceState] | None:
    states = compose.ps()
    by_service = {s.service: s for s in states}
    waiting = []
    for service in expected:
        current = by_service.get(service)
        if current is None:
            waiting.append(f"{service}: not created")
        elif service in ONE_SHOT:
            if current.state == "exited" and current.exit_code != 0:
                raise _service_failure(compose, current)
            if not current.completed:
                waiting.append(f"{service}: {current.state}")
        elif current.health == "unhealthy" or current.state in ("exited", "dead"):
            raise _service_failure(compose, current)
        elif not current.ok:
            waiting.append(f"{service}: {current.health or current.state}")
    if waiting:
        raise NotReady(", ".join(waiting))
    return states


def _service_failure(compose: Compose, state: ServiceState) -> StackError:
    """One error naming the failing service, with its last healthcheck result and log lines."""
    if state.state == "exited":
        what = f"service {state.service} exited with code {state.exit_code}"
    else:
        what = f"service {state.service} is {state.health or state.state}"
        probe = compose.last_health_probe(state.container) if state.has_healthcheck else None
        if probe is not None and probe.exit_code != 0:
            said = probe.output.splitlines()[-1] if probe.output else "no output"
            what += f" (its healthcheck exited {probe.exit_code}: {said})"
    logs = compose.logs([state.service], tail=LOG_LINES_ON_FAILURE).rstrip()
    message = f"{what}; its last log lines:\n{logs}" if logs else f"{what} (it printed no logs)"
    return StackError(message, hint=f"fix the cause above, then run `sandbox up` again; `sandbox logs {state.service}` shows more")


def _severity(state: ServiceState) -> int:
    """Which service to blame first: failed, then crash-looping, then still starting (4 = fine)."""
    if state.health == "unhealthy" or (state.state in ("exited", "dead") and state.exit_code != 0):
        return 0
    if state.state == "restarting":
        return 1
    if state.service not in ONE_SHOT and not state.ok:
        return 2
    return 4


def _stack_failure(compose: Compose, exc: SandboxError) -> StackError:
    """Turn a compose/wait failure into one error naming the failing service with its logs."""
    try:
        states = compose.ps()
    except SandboxError:
        states = []
    bad = sorted((s for s in states if _severity(s) < 4), key=lambda s: (_severity(s), s.service))
    if bad:
        return _service_failure(compose, bad[0])
    detail = exc.stderr if isinstance(exc, CommandFailed) else exc.message
    lines = [line.strip() for line in detail.splitlines() if line.strip()]
    return StackError(
        f"the Airflow stack did not come up: {lines[-1] if lines else exc.message}",
        hint="run `sandbox up -v` to see compose's output, `sandbox logs` for the services' logs",
    )


# --- down ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DownResult:
    mode: Mode | None
    purged: bool
    removed: tuple[str, ...]


def down(settings: Settings, reporter: Reporter, *, purge: bool = False, adapters: Adapters | None = None) -> DownResult:
    """Stop and remove containers and the cluster; keep volumes, images and state unless purge."""
    state = StateDir(settings.state_dir)
    removed: list[str] = []
    if not state.path.exists():
        return DownResult(None, purge, ())  # nothing was ever brought up here: no engine needed
    with state.lock("down"):
        check_not_renamed(settings, state)
        mode = read_mode(state)
        if state.compose_env_file.exists():
            adapters = adapters or connect(settings)
            compose = adapters.compose(settings, mode or "stack-only")
            with reporter.step("stop the Airflow stack" + (" and remove its volumes" if purge else "")):
                compose.down(volumes=purge, on_line=reporter.output)
            removed.append("containers" + (" and volumes" if purge else ""))
        else:
            reporter.info("no compose stack was rendered here; nothing to stop")
        if mode == "full" or _cluster_record_exists(state):
            from sandbox.core.cluster import delete_cluster

            adapters = adapters or connect(settings)
            kind = adapters.kind(settings, reporter, download=False)
            with reporter.step(f"delete kind cluster {settings.cluster_name}"):
                delete_cluster(settings, kind)
            removed.append(f"cluster {settings.cluster_name}")
        if purge:
            with reporter.step(f"remove {state.path}"):
                shutil.rmtree(state.path, ignore_errors=True)
            removed.append(str(state.path))
        else:
            record_path(state).unlink(missing_ok=True)
            _fingerprint_path(state).unlink(missing_ok=True)
    return DownResult(mode, purge, tuple(removed))


def _cluster_record_exists(state: StateDir) -> bool:
    from sandbox.core.cluster import read_record

    return read_record(state) is not None


# --- status ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StackStatus:
    mode: Mode | None
    runtime: str | None
    cluster: Any  # sandbox.core.cluster.ClusterStatus, None in stack-only mode
    services: tuple[ServiceState, ...]
    missing_services: tuple[str, ...]
    api: dict[str, Any] | None
    api_error: str | None
    url: str
    user: str
    password: str | None
    problems: tuple[str, ...] = ()

    @property
    def healthy(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "mode": self.mode,
            "runtime": self.runtime,
            "cluster": self.cluster.to_dict() if self.cluster is not None else None,
            "services": [s.to_dict() for s in self.services],
            "missing_services": list(self.missing_services),
            "api": {"url": self.url, "health": self.api, "error": self.api_error},
            "login": {"user": self.user, "password": self.password},
            "problems": list(self.problems),
        }


def status(settings: Settings, *, adapters: Adapters | None = None) -> StackStatus:
    """Every component's state; never raises for a stopped or broken sandbox (problems say why)."""
    state = StateDir(settings.state_dir)
    mode = read_mode(state)
    password = _admin_password(state)
    problems: list[str] = []
    if mode is None:
        problems.append("the sandbox is not up (run `sandbox up`)")
    try:
        adapters = adapters or connect(settings)
    except SandboxError as exc:
        return StackStatus(mode, None, None, (), (), None, exc.message, settings.api_url, ADMIN_USER, password, (*problems, exc.message))
    cluster = None
    if mode == "full":
        from sandbox.core.cluster import cluster_status

        kube = None
        if state.admin_kubeconfig.exists():
            try:
                kube = adapters.kube(state.admin_kubeconfig)
            except SandboxError as exc:
                problems.append(exc.message)
        cluster = cluster_status(settings, adapters.kind(settings, SilentReporter(), download=False), kube)
        problems += list(cluster.problems)
    services: list[ServiceState] = []
    missing: list[str] = []
    if mode is not None and state.compose_env_file.exists():
        try:
            compose = adapters.compose(settings, mode)
            services = compose.ps()
            expected = _expected_services(compose)
            present = {s.service for s in services}
            missing = [s for s in expected if s not in present]
        except SandboxError as exc:
            problems.append(f"cannot list the compose services: {exc.message}")
        problems += [f"service {s} is not running" for s in missing]
        for s in services:
            if s.service in ONE_SHOT:
                if s.state == "exited" and s.exit_code != 0:
                    problems.append(f"service {s.service} exited with code {s.exit_code}")
            elif not s.ok:
                problems.append(f"service {s.service} is {s.health or s.state}")
    api = None
    api_error = None
    if mode is not None:
        try:
            api = adapters.health(settings.api_url)
            problems += [
                f"Airflow reports {component} {info.get('status')}"
                for component, info in api.items()
                if isinstance(info, dict) and info.get("status") not in ("healthy", None)
            ]
        except SandboxError as exc:
            api_error = exc.message
            problems.append(exc.message)
    return StackStatus(
        mode, adapters.runtime.name, cluster, tuple(services), tuple(missing), api, api_error, settings.api_url, ADMIN_USER, password, tuple(problems)
    )


def _admin_password(state: StateDir) -> str | None:
    try:
        return str(json.loads(state.secrets_file.read_text())["admin_password"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


# --- logs ----------------------------------------------------------------------------------------


def logs(
    settings: Settings,
    services: Sequence[str] = (),
    *,
    follow: bool = False,
    tail: int | None = None,
    on_line: Callable[[str], None],
    adapters: Adapters | None = None,
) -> None:
    """Print (or follow) the compose services' logs."""
    compose = _compose_of_running_sandbox(settings, adapters, "there are no logs to show")
    known = list(dict.fromkeys([*compose.services(), "flower"]))
    unknown = [s for s in services if s not in known]
    if unknown:
        from sandbox.errors import UsageError

        raise UsageError(f"unknown service(s): {', '.join(unknown)}", hint=f"services: {', '.join(known)}")
    if follow:
        compose.follow_logs(services, tail=tail, on_line=on_line)
    else:
        for line in compose.logs(services, tail=tail).splitlines():
            on_line(line)


def _compose_of_running_sandbox(settings: Settings, adapters: Adapters | None, what: str) -> Compose:
    state = StateDir(settings.state_dir)
    mode = read_mode(state)
    if mode is None or not state.compose_env_file.exists():
        raise StackError(f"the sandbox is not up, so {what}", hint="run `sandbox up`")
    return (adapters or connect(settings)).compose(settings, mode)


# --- the airflow CLI in the stack --------------------------------------------------------------

# The scheduler has what most `airflow` commands need: the DAG folder, the database and, in full
# mode, the kubeconfig (so `airflow tasks test` of a pod task reaches the cluster as in a run).
AIRFLOW_CLI_SERVICE = "airflow-scheduler"


def airflow_cli(settings: Settings, args: Sequence[str], *, tty: bool, adapters: Adapters | None = None) -> int:
    """Run `airflow ARGS` in the running scheduler container; its exit code."""
    return airflow_exec(settings, ["airflow", *args], tty=tty, adapters=adapters)


def airflow_exec(settings: Settings, argv: Sequence[str], *, tty: bool, adapters: Adapters | None = None) -> int:
    """Run `argv` in the running scheduler container (Airflow's python and CLI); its exit code."""
    compose = _compose_of_running_sandbox(settings, adapters, "there is no Airflow to run commands in")
    running = {s.service for s in compose.ps() if s.state == "running"}
    if AIRFLOW_CLI_SERVICE not in running:
        raise StackError(
            f"{AIRFLOW_CLI_SERVICE} is not running, so there is no Airflow to run commands in",
            hint="run `sandbox up` (or `sandbox status` to see what is wrong)",
        )
    return compose.exec(AIRFLOW_CLI_SERVICE, list(argv), tty=tty)
