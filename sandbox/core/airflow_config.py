"""The one source of Airflow's configuration: `airflow_env()` returns the AIRFLOW__* mapping.

Compose renders it into `.sandbox/airflow.env` (hosts are service names); the native test stack
starts Airflow processes with the very same mapping (hosts are 127.0.0.1). Only the Topology
differs between the two.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import quote

from sandbox.config import Settings
from sandbox.core import blob
from sandbox.errors import ConfigError
from sandbox.state import ADMIN_USER, Secrets

# Dev-tuned latency knobs (see README "Performance"; chosen and checked by
# benchmarks/airflow_latency.py, which compares them with Airflow's defaults in one run).
# New DAG files are seen within ~1 s (default: 300 s).
DAG_REFRESH_INTERVAL_S = 1
# Scheduler's sleep when a loop found nothing to do: run latency vs idle CPU. Measured: 0.25 s
# -> 3-task run 0.31 s vs 1.09 s at the default 1 s, scheduler 6.4 % of a core idle vs 1.9 %;
# 0.2 s -> scheduler ~8 %, over the budget of 2x the defaults' whole-stack idle CPU.
SCHEDULER_IDLE_SLEEP_S = 0.25
# Re-parse unchanged files every 10 min instead of 30 s: edited files are re-parsed at once
# anyway (by mtime); this pays for part of the scheduler's shorter sleep.
MIN_FILE_PROCESS_INTERVAL_S = 600
# Fewer pooled Celery processes than the default 16: ~170 MB less PSS at idle.
WORKER_CONCURRENCY = 4
# Write a re-parsed DAG at once: with the default 30 s an edit saved within 30 s of the last
# parse is dropped until the next periodic re-parse, and run-dag would run the old code.
# Unchanged DAGs are still not rewritten (hash check).
MIN_SERIALIZED_DAG_UPDATE_S = 0
# A task whose worker died (container killed, laptop slept) is failed and retried after this
# long instead of Airflow's 300 s; supervisors heartbeat every 5 s ([workers]
# min_heartbeat_interval), so 30 s is six missed beats.
TASK_HEARTBEAT_TIMEOUT_S = 30
TASK_HEARTBEAT_CHECK_S = 5
# The variables those knobs set: benchmarks/airflow_latency.py removes them for its baseline.
TUNING_KEYS: tuple[str, ...] = (
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL",
    "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL",
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL",
    "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL",
    "AIRFLOW__CELERY__WORKER_CONCURRENCY",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL",
)

# What the DAG helper (sample_dags/sandbox_tasks) reads to aim pod tasks at the profile's
# virtual node; `sandbox lint` sets it too while it parses DAG files.
PROFILE_ENV = "SANDBOX_PROFILE"

DB_USER = "airflow"
DB_NAME = "airflow"
BROKER_USER = "airflow"


@dataclass(frozen=True)
class Topology:
    """Where each service is, as seen from inside the Airflow processes."""

    db_host: str
    db_port: int
    broker_host: str
    broker_port: int
    api_host: str  # address the api-server binds
    api_port: int
    api_internal_url: str  # how workers reach the api-server (execution API)
    api_public_url: str  # how the user's browser reaches it (links in the UI)
    dags_folder: str
    passwords_file: str
    kubeconfig: str | None  # None: no cluster (stack-only); pod tasks fail at once
    blob_endpoint: str | None = None  # Azurite's blob endpoint as Airflow processes reach it
    db_user: str = DB_USER
    broker_user: str = BROKER_USER
    db_name: str = DB_NAME  # the native test stack uses a fresh database per session
    broker_vhost: str = "/"  # ...and a fresh RabbitMQ vhost when it can create one


# Paths inside the official apache/airflow image (AIRFLOW_HOME=/opt/airflow).
CONTAINER_HOME = PurePosixPath("/opt/airflow")
CONTAINER_DAGS = CONTAINER_HOME / "dags"
CONTAINER_KUBECONFIG = CONTAINER_HOME / ".kube" / "config"
CONTAINER_PASSWORDS = CONTAINER_HOME / "simple_auth_manager_passwords.json"


def compose_topology(settings: Settings, *, with_cluster: bool = True) -> Topology:
    """The compose stack: service names on the compose network, files mounted by compose."""
    return Topology(
        db_host="postgres",
        db_port=5432,
        broker_host="rabbitmq",
        broker_port=5672,
        api_host="0.0.0.0",  # inside the container; the host publishes it on 127.0.0.1 only
        api_port=8080,
        api_internal_url="http://airflow-apiserver:8080",
        api_public_url=settings.api_url,
        dags_folder=str(CONTAINER_DAGS),
        passwords_file=str(CONTAINER_PASSWORDS),
        kubeconfig=str(CONTAINER_KUBECONFIG) if with_cluster else None,
        blob_endpoint=blob.blob_endpoint("azurite"),
    )


def airflow_env(settings: Settings, secrets: Secrets, topology: Topology) -> dict[str, str]:
    """Every AIRFLOW__* variable the sandbox sets, identical for all Airflow processes."""
    db_password = quote(secrets.postgres_password, safe="")
    broker_password = quote(secrets.rabbitmq_password, safe="")
    db = f"{topology.db_user}:{db_password}@{topology.db_host}:{topology.db_port}/{topology.db_name}"
    vhost = quote(topology.broker_vhost, safe="") if topology.broker_vhost != "/" else "/"
    env = {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": topology.dags_folder,
        "AIRFLOW__CORE__FERNET_KEY": secrets.fernet_key,
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": str(settings.scheduled_runs),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{topology.api_internal_url}/execution/",
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": topology.passwords_file,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{db}",
        "AIRFLOW__CELERY__BROKER_URL": (
            f"amqp://{topology.broker_user}:{broker_password}"
            f"@{topology.broker_host}:{topology.broker_port}/{vhost}"
        ),
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{db}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
        # The global caps from sandbox.toml [concurrency] (Airflow's defaults unless set).
        **{
            f"AIRFLOW__CORE__{name.upper()}": str(value)
            for name, value in settings.concurrency.items()
        },
        # The global caps from sandbox.toml [concurrency] (Airflow's defaults unless set).
        **{
            f"AIRFLOW__CORE__{name.upper()}": str(value)
            for name, value in settings.concurrency.items()
        },
        "AIRFLOW__API__HOST": topology.api_host,
        "AIRFLOW__API__PORT": str(topology.api_port),
        "AIRFLOW__API__BASE_URL": topology.api_public_url,
        "AIRFLOW__API__SECRET_KEY": secrets.api_secret_key,
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.jwt_secret,
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": str(DAG_REFRESH_INTERVAL_S),
        "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": str(DAG_REFRESH_INTERVAL_S),
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": str(SCHEDULER_IDLE_SLEEP_S),
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": str(MIN_FILE_PROCESS_INTERVAL_S),
        "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": str(MIN_SERIALIZED_DAG_UPDATE_S),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(TASK_HEARTBEAT_TIMEOUT_S),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": str(
            TASK_HEARTBEAT_CHECK_S
        ),
    }
    if topology.kubeconfig is not None:
        env["AIRFLOW_CONN_KUBERNETES_DEFAULT"] = json.dumps(
            {
                "conn_type": "kubernetes",
                "extra": {
                    "kube_config_path": topology.kubeconfig,
                    "namespace": settings.task_namespace,
                    "in_cluster": False,
                },
            }
        )
        env["AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE"] = settings.task_namespace
    if topology.blob_endpoint is not None:
        env[blob.BLOB_ENV] = blob.connection_string(topology.blob_endpoint)
    env["SANDBOX_TASK_NAMESPACE"] = settings.task_namespace
    env[PROFILE_ENV] = settings.profile
    env["SANDBOX_CLUSTER"] = "kind" if topology.kubeconfig is not None else "none"
    return env


def render_env_file(env: dict[str, str]) -> str:
    """A compose `env_file`: unquoted KEY=VALUE lines.

    Compose v1 takes such values literally, compose v2 expands `$` in them and strips a ` #`
    comment: values holding a newline, `$` or ` #` are refused rather than silently changed.
    """
    for key, value in env.items():
        if "\n" in value or "$" in value or " #" in value:
            raise ConfigError(
                f"{key}={value!r} holds a newline, `$` or ` #`, which compose env files alter",
                hint="the value comes from a sandbox setting or a path: choose one without them",
            )
    return "".join(f"{key}={value}\n" for key, value in sorted(env.items()))
