"""`sandbox status`: every component's state, without changing anything."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sandbox.config import Settings
from sandbox.core.cluster import ClusterStatus
from sandbox.core.stack import expected_services
from sandbox.core.stack_files import Mode, read_mode
from sandbox.core.wiring import Adapters
from sandbox.errors import SandboxError
from sandbox.models import ServiceState
from sandbox.state import ADMIN_USER, StateDir
from sandbox.text import last_line


@dataclass(frozen=True)
class StackStatus:
    mode: Mode | None
    runtime: str | None
    cluster: ClusterStatus | None  # None in stack-only mode
    services: tuple[ServiceState, ...]
    missing_services: tuple[str, ...]
    api: dict[str, Any] | None
    api_error: str | None
    url: str
    user: str
    password: str | None
    problems: tuple[str, ...] = ()
    # (file, the error's last line): a DAG that does not import is the user's, not the stack's
    # problem, so it is listed here and does not make the stack unhealthy (`sandbox lint` exits 1).
    dag_import_errors: tuple[tuple[str, str], ...] = ()

    @property
    def healthy(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "mode": self.mode,
            "runtime": self.runtime,
            "cluster": self.cluster.to_json() if self.cluster is not None else None,
            "services": [s.to_json() for s in self.services],
            "missing_services": list(self.missing_services),
            "api": {"url": self.url, "health": self.api, "error": self.api_error},
            "login": {"user": self.user, "password": self.password},
            "problems": list(self.problems),
            "dag_import_errors": [{"file": f, "error": e} for f, e in self.dag_import_errors],
        }


def status(settings: Settings, adapters: Adapters) -> StackStatus:
    """Every component's state; never raises for a stopped or broken sandbox (problems say why)."""
    state = StateDir(settings.state_dir)
    mode = read_mode(state)
    password = _admin_password(state)
    problems: list[str] = []
    if mode is None:
        problems.append("the sandbox is not up (run `sandbox up`)")
    try:
        runtime = adapters.runtime.name
    except SandboxError as exc:
        return StackStatus(
            mode=mode, runtime=None, cluster=None, services=(), missing_services=(), api=None,
            api_error=exc.message, url=settings.api_url, user=ADMIN_USER, password=password,
            problems=(*problems, exc.message),
        )
    cluster = _cluster(settings, state, adapters) if mode == "full" else None
    if cluster is not None:
        problems += list(cluster.problems)
    services: list[ServiceState] = []
    missing: list[str] = []
    if mode is not None and state.compose_env_file.exists():
        try:
            compose = adapters.compose(mode)
            services = compose.ps()
            present = {s.service for s in services}
            missing = [s for s in expected_services(compose) if s not in present]
        except SandboxError as exc:
            problems.append(f"cannot list the compose services: {exc.message}")
        problems += [f"service {s} is not running" for s in missing]
        problems += [
            f"service {s.service} {s.condition}"
            for s in services
            if s.verdict == "failed" or (s.verdict == "pending" and not s.one_shot)
        ]
    api = None
    api_error = None
    import_errors: tuple[tuple[str, str], ...] = ()
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
        if api is not None and password is not None:
            import_errors = _dag_import_errors(adapters)
    return StackStatus(
        mode=mode, runtime=runtime, cluster=cluster, services=tuple(services), missing_services=tuple(missing),
        api=api, api_error=api_error, url=settings.api_url, user=ADMIN_USER, password=password,
        problems=tuple(problems), dag_import_errors=import_errors,
    )


def _dag_import_errors(adapters: Adapters) -> tuple[tuple[str, str], ...]:
    """What the DAG processor last failed to import, file by file; empty when the API refuses."""
    try:
        with adapters.airflow() as api:
            found = api.import_errors()
    except SandboxError:
        return ()
    return tuple(sorted((e.filename, last_line(e.stack_trace, "(no message)")) for e in found))


def _cluster(settings: Settings, state: StateDir, adapters: Adapters) -> ClusterStatus:
    from sandbox.core.cluster import cluster_status

    try:
        kind = adapters.kind()
    except SandboxError as exc:
        return ClusterStatus(settings.cluster_name, exists=False, ours=False, problems=(f"cannot list kind clusters: {exc.message}",))
    kube = None
    problems: tuple[str, ...] = ()
    if state.admin_kubeconfig.exists():
        try:
            kube = adapters.kube(state.admin_kubeconfig)
        except SandboxError as exc:
            problems = (exc.message,)
    found = cluster_status(settings, kind, kube)
    return found if not problems else ClusterStatus(
        found.name, found.exists, found.ours, found.nodes, found.virtual_node_verified, (*problems, *found.problems)
    )


def _admin_password(state: StateDir) -> str | None:
    try:
        return str(json.loads(state.secrets_file.read_text())["admin_password"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
