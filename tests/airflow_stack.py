"""A real Airflow 3 stack as native processes, for the integration tier and the benchmarks.

PostgreSQL and RabbitMQ come from URLs (SANDBOX_TEST_POSTGRES_URL / SANDBOX_TEST_RABBITMQ_URL),
or from testcontainers with the official images when a Docker daemon answers. Each stack gets a
fresh database and role (and, when `rabbitmqctl` is at hand, a fresh vhost and user), its own
AIRFLOW_HOME and project dir, and starts api-server, scheduler, dag-processor, triggerer and a
Celery worker — each in its own process group — with the environment `airflow_env()` renders for
compose, only the Topology swapped for 127.0.0.1 and free ports.
"""

from __future__ import annotations

import json
import os
import secrets as _secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sandbox.core.airflow_config import Topology, airflow_env
from sandbox.config import Settings, load_settings
from sandbox.state import Secrets, StateDir, write_private
from sandbox.waiting import NotReady, wait_until
from support import free_port

REPO = Path(__file__).resolve().parent.parent
AIRFLOW = str(Path(sys.executable).parent / "airflow")
PROCESSES: dict[str, list[str]] = {
    "api-server": [AIRFLOW, "api-server"],
    "scheduler": [AIRFLOW, "scheduler"],
    "dag-processor": [AIRFLOW, "dag-processor"],
    "triggerer": [AIRFLOW, "triggerer"],
    "worker": [AIRFLOW, "celery", "worker"],
}


class ServicesUnavailable(Exception):
    """Neither URLs nor a Docker daemon: the caller skips with this reason."""


@dataclass(frozen=True)
class Services:
    postgres_url: str  # a login that may create roles and databases
    rabbitmq_url: str


@contextmanager
def services() -> Iterator[Services]:
    """URLs from the environment, else testcontainers (official images), else ServicesUnavailable."""
    pg, mq = os.environ.get("SANDBOX_TEST_POSTGRES_URL"), os.environ.get("SANDBOX_TEST_RABBITMQ_URL")
    if pg and mq:
        yield Services(pg, mq)
        return
    try:
        import docker

        docker.from_env().ping()
    except Exception as exc:  # any failure to reach a daemon means: no containers here
        raise ServicesUnavailable(
            "no SANDBOX_TEST_POSTGRES_URL/SANDBOX_TEST_RABBITMQ_URL and no Docker daemon "
            f"for testcontainers ({type(exc).__name__})"
        ) from exc
    from testcontainers.postgres import PostgresContainer
    from testcontainers.rabbitmq import RabbitMqContainer

    from sandbox.config import POSTGRES_IMAGE, RABBITMQ_IMAGE

    with PostgresContainer(POSTGRES_IMAGE, driver=None) as postgres, RabbitMqContainer(
        RABBITMQ_IMAGE
    ) as rabbit:
        host, port = rabbit.get_container_host_ip(), rabbit.get_exposed_port(5672)
        yield Services(
            postgres.get_connection_url(),
            f"amqp://{rabbit.username}:{rabbit.password}@{host}:{port}/",
        )


@dataclass(frozen=True)
class _Endpoint:
    host: str
    port: int
    user: str
    password: str
    path: str


def _endpoint(url: str, default_port: int) -> _Endpoint:
    parts = urlsplit(url)
    return _Endpoint(
        parts.hostname or "127.0.0.1",
        parts.port or default_port,
        unquote(parts.username or ""),
        unquote(parts.password or ""),
        unquote(parts.path[1:]) if parts.path not in ("", "/") else "/",
    )


class AirflowStack:
    """Context manager: a fresh, healthy Airflow stack; everything stopped and dropped on exit."""

    def __init__(
        self,
        services: Services,
        workdir: Path,
        *,
        dags_source: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
        drop_env: Iterable[str] = (),
        startup_timeout: float = 180,
        scheduled_runs: bool = False,
    ) -> None:
        self.services = services
        self.workdir = workdir
        self.session = f"sbx_{_secrets.token_hex(4)}"
        self.project_dir = workdir / "project"
        self.home = workdir / "airflow-home"
        self.logs = workdir / "logs"
        self.dags_folder = self.project_dir / "dags"
        self.dags_source = dags_source
        self.extra_env = dict(extra_env or {})
        self.drop_env = set(drop_env)
        self.startup_timeout = startup_timeout
        # Off by default: a test's unpause starts no runs beside its own. On for the tests of
        # what schedules do (pause/unpause).
        self.scheduled_runs = scheduled_runs
        self.api_port = free_port()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._cleanups: list[tuple[str, object]] = []
        self.env: dict[str, str] = {}

    # -- lifecycle -----------------------------------------------------------------------
    def __enter__(self) -> AirflowStack:
        try:
            self._prepare()
            self._migrate()
            for name in PROCESSES:
                self._start(name)
            self.wait_healthy()
        except BaseException:
            print(self.log_tails(), file=sys.stderr)
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            print(self.log_tails(), file=sys.stderr)
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def state(self) -> StateDir:
        return StateDir(self.settings.state_dir)

    @property
    def admin_password(self) -> str:
        return self.secrets.admin_password

    def cli_env(self) -> dict[str, str]:
        """Environment for the `sandbox` CLI: the same mechanism a user has (project dir)."""
        return {**os.environ, "SANDBOX_PROJECT_DIR": str(self.project_dir)}

    def _prepare(self) -> None:
        for path in (self.home, self.logs, self.dags_folder):
            path.mkdir(parents=True, exist_ok=True)
        if self.dags_source is not None:
            for source in self.dags_source.glob("*.py"):
                shutil.copy(source, self.dags_folder / source.name)
        # The repo's kind-config declares the nodes run-dag's lint step places pod tasks on.
        (self.project_dir / "sandbox.toml").write_text(
            f'dags_folder = "dags"\nkind_config = "{REPO / "kind-config.yaml"}"\n'
            f"scheduled_runs = {str(self.scheduled_runs).lower()}\n"
            f"[ports]\napi = {self.api_port}\n"
        )
        self.settings: Settings = load_settings(self.project_dir, environ={})
        db_user, db_password = self._create_database()
        mq_user, mq_password, vhost = self._create_vhost()
        secrets = replace(
            Secrets.generate(), postgres_password=db_password, rabbitmq_password=mq_password
        )
        self.state.ensure()
        write_private(self.state.secrets_file, json.dumps(asdict(secrets)))
        self.secrets = self.state.secrets()  # also seeds SimpleAuthManager's passwords file
        pg, mq = _endpoint(self.services.postgres_url, 5432), _endpoint(self.services.rabbitmq_url, 5672)
        topology = Topology(
            db_host=pg.host,
            db_port=pg.port,
            broker_host=mq.host,
            broker_port=mq.port,
            api_host="127.0.0.1",
            api_port=self.api_port,
            api_internal_url=self.url,
            api_public_url=self.url,
            dags_folder=str(self.dags_folder),
            passwords_file=str(self.state.passwords_file),
            kubeconfig=None,
            db_user=db_user,
            broker_user=mq_user,
            db_name=self.session,
            broker_vhost=vhost,
        )
        env = airflow_env(self.settings, self.secrets, topology)
        # Topology-like overrides only: these servers bind fixed default ports (8793, 8794, 8974)
        # on every interface, which would collide with other stacks on the same machine.
        env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(free_port())
        env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"] = str(free_port())
        env["AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST"] = "127.0.0.1"
        env["AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT"] = str(free_port())
        for key in self.drop_env:
            env.pop(key, None)
        env.update(self.extra_env)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
            **env,
            "AIRFLOW_HOME": str(self.home),
            "PYTHONUNBUFFERED": "1",
        }

    def _create_database(self) -> tuple[str, str]:
        from psycopg2 import sql

        password = _secrets.token_urlsafe(16)
        with _admin_pg(self.services.postgres_url) as cur:
            cur.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(self.session)),
                (password,),
            )
            self._cleanups.append(("role", self.session))
            cur.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(self.session), sql.Identifier(self.session)
                )
            )
            self._cleanups.append(("database", self.session))
        return self.session, password

    def _create_vhost(self) -> tuple[str, str, str]:
        """A vhost and user of our own when rabbitmqctl runs here; else the URL's login."""
        mq = _endpoint(self.services.rabbitmq_url, 5672)
        ctl = shutil.which("rabbitmqctl")
        if ctl is None or mq.host not in ("127.0.0.1", "localhost"):
            return mq.user, mq.password, mq.path
        password = _secrets.token_hex(16)  # never a leading "-", which rabbitmqctl reads as an option
        for argv in (
            ["add_vhost", self.session],
            ["add_user", self.session, password],
            ["set_permissions", "-p", self.session, self.session, ".*", ".*", ".*"],
        ):
            subprocess.run([ctl, "-q", *argv], check=True, capture_output=True)
            if argv[0] != "set_permissions":
                self._cleanups.append((argv[0].replace("add_", ""), self.session))
        return self.session, password, self.session

    def _migrate(self) -> None:
        with open(self.logs / "db-migrate.log", "wb") as out:
            subprocess.run(
                [AIRFLOW, "db", "migrate"], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                check=True, timeout=300,
            )

    def _start(self, name: str) -> None:
        log = open(self.logs / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(
            PROCESSES[name],
            env=self.env,
            cwd=self.home,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # own process group: worker/triggerer fork serve-logs
        )
        log.close()

    def wait_healthy(self) -> None:
        import httpx

        def healthy() -> bool:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}")
            body = httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
            states = {k: (v or {}).get("status") for k, v in body.items()}
            if any(state != "healthy" for state in states.values()):
                raise NotReady(json.dumps(states))
            self._wait_worker_ready(now=True)
            return True

        wait_until(
            healthy, what="native Airflow stack healthy", timeout=self.startup_timeout,
            interval=0.3, transient=(httpx.HTTPError, ValueError),
            hint=f"see the process logs in {self.logs}",
        )

    def _worker_ready_count(self) -> int:
        path = self.logs / "worker.log"
        return path.read_text(errors="replace").count(" ready.") if path.exists() else 0

    def _wait_worker_ready(self, *, now: bool = False, after: int = 0) -> None:
        def ready() -> bool:
            if self._worker_ready_count() > after:
                return True
            raise NotReady("celery worker not ready yet")

        if now:
            ready()
            return
        wait_until(ready, what="celery worker ready", timeout=120, interval=0.2)

    # -- the worker, killed and restarted --------------------------------------------------
    def kill_worker(self) -> None:
        """SIGKILL the worker like a dying container: its process group (worker, pool,
        supervisors, serve-logs) and the task processes, which sit in groups of their own."""
        proc = self.procs["worker"]
        _kill_session(proc, signal.SIGKILL)
        proc.wait(timeout=30)

    def start_worker(self) -> None:
        before = self._worker_ready_count()
        self._start("worker")
        self._wait_worker_ready(after=before)

    def restart(self) -> None:
        """Every Airflow process stopped and started again on the same database, vhost and
        folders: what `sandbox down` + `up` does to the containers, the volume kept."""
        before = self._worker_ready_count()
        self._stop_processes()
        for name in PROCESSES:
            self._start(name)
        self._wait_worker_ready(after=before)
        self.wait_healthy()

    # -- teardown and diagnostics ----------------------------------------------------------
    def stop(self) -> None:
        self._stop_processes()
        self._drop_resources()

    def _stop_processes(self) -> None:
        for proc in self.procs.values():
            _signal_group(proc, signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                print(f"{name} ignored SIGTERM; killing its process group", file=sys.stderr)
            _kill_session(proc, signal.SIGKILL)  # stragglers (serve-logs, task processes)
            proc.wait()
        self.procs.clear()

    def _drop_resources(self) -> None:
        from psycopg2 import sql

        ctl = shutil.which("rabbitmqctl")
        for kind, name in reversed(self._cleanups):
            try:
                if kind in ("vhost", "user") and ctl:
                    subprocess.run([ctl, "-q", f"delete_{kind}", str(name)], capture_output=True)
                elif kind in ("database", "role"):
                    with _admin_pg(self.services.postgres_url) as cur:
                        statement = "DROP DATABASE IF EXISTS {} WITH (FORCE)" if kind == "database" else "DROP ROLE IF EXISTS {}"
                        cur.execute(sql.SQL(statement).format(sql.Identifier(str(name))))
            except Exception as exc:  # teardown goes on; say what was left behind
                print(f"could not drop {kind} {name}: {exc}", file=sys.stderr)
        self._cleanups.clear()

    def log_tails(self, lines: int = 40) -> str:
        chunks = []
        for path in sorted(self.logs.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            chunks.append(f"===== {path.name} (last {len(tail)} lines) =====\n" + "\n".join(tail))
        return "\n".join(chunks)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _kill_session(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Signal every process of the session `proc` leads (it was started with a new session):
    Airflow's task runner puts each task process into a process group of its own."""
    _signal_group(proc, sig)
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == proc.pid:
                os.kill(int(entry.name), sig)
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile, or no /proc (macOS): the group signal has to do


@contextmanager
def _admin_pg(url: str) -> Iterator[object]:
    import psycopg2

    conn = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.close()
