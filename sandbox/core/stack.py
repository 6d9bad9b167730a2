"""`sandbox up` / `down` / `logs` / `airflow`: the whole local stack, each step an idempotent ensure.

up = doctor → secrets → tools → cluster → virtual node → cluster access → policy → blob secret →
stack → images. A step that finds its work done returns at once, so a second `up` only
verifies, and an `up` after a failure or Ctrl-C resumes. `--stack-only` skips every cluster step
and the images; the mode is recorded in .sandbox/stack.json so `down` and `status` know it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sandbox.adapters.compose import Compose
from sandbox.adapters.runtime import driving_healthchecks
from sandbox.config import Settings
from sandbox.core import blob
from sandbox.core.doctor import examine, require_healthy
from sandbox.core.ports import KindApi
from sandbox.core.stack_files import (
    Mode,
    check_not_renamed,
    pod_blob_endpoint,
    read_mode,
    render_stack_files,
    stack_fingerprint,
    write_mode,
)
from sandbox.core.wiring import Adapters
from sandbox.errors import CommandFailed, SandboxError, StackError, UsageError, WaitTimeout
from sandbox.models import ServiceState
from sandbox.progress import Reporter
from sandbox.state import ADMIN_USER, StateDir, write_private
from sandbox.text import last_line
from sandbox.waiting import NotReady, wait_until

LOG_LINES_ON_FAILURE = 20
OPTIONAL_SERVICES = ("flower",)  # only under its compose profile: never awaited


# --- up ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UpResult:
    mode: Mode
    url: str
    user: str
    password: str
    services: tuple[ServiceState, ...]


def up(settings: Settings, reporter: Reporter, adapters: Adapters, *, stack_only: bool = False) -> UpResult:
    """Bring everything up (or verify it is): safe to run again at any time."""
    state = StateDir(settings.state_dir)
    mode: Mode = "stack-only" if stack_only else "full"
    with state.lock("up"):
        check_not_renamed(settings, state)
        with reporter.step("check prerequisites"):
            report = examine(settings, adapters, stack_only=stack_only)
            for check in report.checks:
                if check.status == "warn":
                    reporter.info(f"warning: {check.what}" + (f" — {check.fix}" if check.fix else ""))
            require_healthy(report)
        secrets = state.secrets()
        kind = None
        if stack_only:
            if read_mode(state) == "full":
                reporter.info(f"switching to --stack-only: cluster {settings.cluster_name} is left as it is (`sandbox down` removes it)")
        else:
            kind = _ensure_cluster_side(settings, state, reporter, adapters)
        write_mode(state, mode, settings.name)
        services = ensure_stack(settings, state, reporter, adapters, mode)
        if kind is not None:
            from sandbox.core.images import build_and_load

            build_and_load(settings, reporter, client=adapters.images, kind=kind)
        return UpResult(mode, settings.api_url, ADMIN_USER, secrets.admin_password, tuple(services))


def _ensure_cluster_side(settings: Settings, state: StateDir, reporter: Reporter, adapters: Adapters) -> KindApi:
    from sandbox.core.access import ensure_cluster_access
    from sandbox.core.capacity import quota_manifests
    from sandbox.core.cluster import ensure_cluster, ensure_virtual_node
    from sandbox.core.policy import policy_manifests

    with reporter.step("tools (kind, kubectl)"):
        kind = adapters.kind(reporter.info)
        adapters.tools.ensure("kubectl", reporter.info)
    ensure_cluster(settings, kind, state, reporter)
    kube = adapters.kube(state.admin_kubeconfig)
    ensure_virtual_node(settings, kube, reporter)
    ensure_cluster_access(settings, kube, state, reporter)
    with reporter.step(f"policy ({settings.profile}) and virtual-node quota"):
        for manifest in [*policy_manifests(settings.profile), *quota_manifests(settings)]:
            kube.apply(manifest)
    with reporter.step("blob storage secret"):
        kube.apply(blob.blob_secret_manifest(settings.task_namespace, pod_blob_endpoint(settings)))
    return kind


def ensure_stack(
    settings: Settings, state: StateDir, reporter: Reporter, adapters: Adapters, mode: Mode
) -> list[ServiceState]:
    """Render the env files, `compose up -d`, and wait until every service is healthy.

    When nothing compose reads changed since the last healthy `up` and every service is
    healthy, compose is not run at all: a second `up` only verifies.
    """
    state.ensure()
    from sandbox.core.images.airflow import ensure_airflow_image

    airflow_ref = ensure_airflow_image(settings, adapters.images, reporter)  # official without requirements
    if render_stack_files(settings, state, adapters.runtime.airflow_uid, mode, airflow_ref):
        reporter.info(f"rendered {state.airflow_env_file} and {state.compose_env_file}")
    compose = adapters.compose(mode)
    fingerprint = stack_fingerprint(compose.project.files, state)
    recorded = state.stack_fingerprint
    unchanged = recorded.exists() and recorded.read_text() == fingerprint
    if unchanged:
        with reporter.step("verify the Airflow stack"):
            try:
                states = _all_healthy(compose, expected_services(compose))
            except (NotReady, StackError, CommandFailed):
                states = None
        if states is not None:
            return states
    recorded.unlink(missing_ok=True)
    with driving_healthchecks(adapters.runtime, compose.healthcheck_containers, runner=adapters.runner):
        with reporter.step("airflow stack (compose up)"):
            try:
                # Unchanged: only start what is missing or stopped (a killed worker), never
                # recreate the healthy rest (see compose.up_argv).
                compose.up(on_line=reporter.output, timeout=settings.timeouts.stack_up, no_recreate=unchanged)
            except CommandFailed as exc:
                raise _stack_failure(compose, exc) from None
        with reporter.step("wait for every service to be healthy"):
            expected = expected_services(compose)
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


def expected_services(compose: Compose) -> list[str]:
    return [s for s in compose.services() if s not in OPTIONAL_SERVICES]


def _all_healthy(compose: Compose, expected: Sequence[str]) -> list[ServiceState]:
    states = compose.ps()
    by_service = {s.service: s for s in states}
    waiting = []
    for service in expected:
        current = by_service.get(service)
        if current is None:
            waiting.append(f"{service}: not created")
        elif current.verdict == "failed":
            raise _service_failure(compose, current)
        elif current.verdict == "pending":
            waiting.append(f"{service}: {current.health or current.state}")
    if waiting:
        raise NotReady(", ".join(waiting))
    return states


def _service_failure(compose: Compose, state: ServiceState) -> StackError:
    """One error naming the failing service, with its last healthcheck result and log lines."""
    what = f"service {state.service} {state.condition}"
    if state.state != "exited":
        probe = compose.last_health_probe(state.container) if state.has_healthcheck else None
        if probe is not None and probe.exit_code != 0:
            what += f" (its healthcheck exited {probe.exit_code}: {last_line(probe.output, 'no output')})"
    logs = compose.logs([state.service], tail=LOG_LINES_ON_FAILURE).rstrip()
    message = f"{what}; its last log lines:\n{logs}" if logs else f"{what} (it printed no logs)"
    return StackError(message, hint=f"fix the cause above, then run `sandbox up` again; `sandbox logs {state.service}` shows more")


def _severity(state: ServiceState) -> int:
    """Which service to blame first: failed, then crash-looping, then still starting (4 = fine)."""
    if state.verdict == "failed":
        return 0
    if state.state == "restarting":
        return 1
    if state.verdict == "pending" and not state.one_shot:
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
    return StackError(
        f"the Airflow stack did not come up: {last_line(detail, exc.message)}",
        hint="run `sandbox up -v` to see compose's output, `sandbox logs` for the services' logs",
    )


# --- down ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DownResult:
    mode: Mode | None
    purged: bool
    removed: tuple[str, ...]


def down(settings: Settings, reporter: Reporter, adapters: Adapters, *, purge: bool = False) -> DownResult:
    """Stop and remove containers and the cluster; keep volumes, images and state unless purge."""
    state = StateDir(settings.state_dir)
    removed: list[str] = []
    if not state.path.exists():
        return DownResult(None, purge, ())  # nothing was ever brought up here: no engine needed
    with state.lock("down"):
        check_not_renamed(settings, state)
        mode = read_mode(state)
        if state.compose_env_file.exists():
            compose = adapters.compose(mode or "stack-only")
            with reporter.step("stop the Airflow stack" + (" and remove its volumes" if purge else "")):
                compose.down(volumes=purge, on_line=reporter.output)
            removed.append("containers" + (" and volumes" if purge else ""))
        else:
            reporter.info("no compose stack was rendered here; nothing to stop")
        if mode == "full" or state.cluster_record.exists():
            from sandbox.core.cluster import delete_cluster

            kind = adapters.kind()
            with reporter.step(f"delete kind cluster {settings.cluster_name}"):
                delete_cluster(settings, kind)
            removed.append(f"cluster {settings.cluster_name}")
        if purge:
            with reporter.step(f"remove {state.path}"):
                shutil.rmtree(state.path, ignore_errors=True)
            removed.append(str(state.path))
        else:
            state.stack_record.unlink(missing_ok=True)
            state.stack_fingerprint.unlink(missing_ok=True)
    return DownResult(mode, purge, tuple(removed))


# --- logs ----------------------------------------------------------------------------------------


def logs(
    settings: Settings,
    services: Sequence[str] = (),
    *,
    follow: bool = False,
    tail: int | None = None,
    on_line: Callable[[str], None],
    adapters: Adapters,
) -> None:
    """Print (or follow) the compose services' logs."""
    compose = _compose_of_running_sandbox(settings, adapters, "there are no logs to show")
    known = list(dict.fromkeys([*compose.services(), *OPTIONAL_SERVICES]))
    unknown = [s for s in services if s not in known]
    if unknown:
        raise UsageError(f"unknown service(s): {', '.join(unknown)}", hint=f"services: {', '.join(known)}")
    if follow:
        compose.follow_logs(services, tail=tail, on_line=on_line)
    else:
        for line in compose.logs(services, tail=tail).splitlines():
            on_line(line)


def _compose_of_running_sandbox(settings: Settings, adapters: Adapters, what: str) -> Compose:
    state = StateDir(settings.state_dir)
    mode = read_mode(state)
    if mode is None or not state.compose_env_file.exists():
        raise StackError(f"the sandbox is not up, so {what}", hint="run `sandbox up`")
    return adapters.compose(mode)


# --- the airflow CLI in the stack --------------------------------------------------------------

# The scheduler has what most `airflow` commands need: the DAG folder, the database and, in full
# mode, the kubeconfig (so `airflow tasks test` of a pod task reaches the cluster as in a run).
AIRFLOW_CLI_SERVICE = "airflow-scheduler"


def airflow_cli(settings: Settings, args: Sequence[str], adapters: Adapters, *, tty: bool) -> int:
    """Run `airflow ARGS` in the running scheduler container; its exit code."""
    compose = _compose_of_running_sandbox(settings, adapters, "there is no Airflow to run commands in")
    running = {s.service for s in compose.ps() if s.state == "running"}
    if AIRFLOW_CLI_SERVICE not in running:
        raise StackError(
            f"{AIRFLOW_CLI_SERVICE} is not running, so there is no Airflow to run commands in",
            hint="run `sandbox up` (or `sandbox status` to see what is wrong)",
        )
    return compose.exec(AIRFLOW_CLI_SERVICE, ["airflow", *args], tty=tty)
