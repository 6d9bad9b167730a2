"""Each stand-in honours the documented contract of the official image it replaces.

These tests check the images, not the compose file: the variables, commands, users, paths and
ports the official images document and the compose file relies on. Every container runs under
podman through its Docker-compatible API, published on free loopback ports only.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import standins
from harness import free_port, network, run_once, running, unique, volume

from sandbox.config import airflow_version
from sandbox.waiting import wait_until

REPO = standins.REPO
LOOPBACK = "127.0.0.1"
CELERY_APP = "airflow.providers.celery.executors.celery_executor.app"
NO_WAIT = {"CONNECTION_CHECK_MAX_COUNT": "0"}


def exec_ok(container: Any, cmd: list[str] | str, **kwargs: Any) -> str:
    code, output = container.exec_run(cmd, **kwargs)
    text = output.decode(errors="replace")
    assert code == 0, f"{cmd!r} exited {code}: {text}"
    return text


# --- image names ------------------------------------------------------------------------------


@pytest.mark.parametrize("short_name", ["postgres", "rabbitmq", "airflow", "azurite"])
def test_short_name_in_compose_resolves_to_the_local_standin(
    docker_client: Any, standin_images: dict[str, str], short_name: str
) -> None:
    """The compose file says `postgres:16`; podman must find the stand-in without pulling."""
    from sandbox import config

    written = {
        "postgres": config.POSTGRES_IMAGE,
        "rabbitmq": config.RABBITMQ_IMAGE,
        "airflow": config.airflow_image(),
        "azurite": config.AZURITE_IMAGE,
    }[short_name]
    image = docker_client.images.get(written)
    assert image.id == docker_client.images.get(standin_images[short_name]).id
    assert image.labels.get(standins.HASH_LABEL)


# --- postgres ---------------------------------------------------------------------------------


def _pg_connect(port: int, user: str, password: str, dbname: str) -> Any:
    import psycopg2

    return psycopg2.connect(
        host=LOOPBACK, port=port, user=user, password=password, dbname=dbname, connect_timeout=3
    )


def _pg_ready(port: int, user: str, password: str, dbname: str, timeout: float = 90) -> Any:
    import psycopg2

    return wait_until(
        lambda: _pg_connect(port, user, password, dbname),
        what=f"postgres stand-in on port {port}",
        timeout=timeout,
        transient=(psycopg2.OperationalError,),
    )


def test_postgres_creates_user_and_database_and_keeps_them_on_its_volume(
    docker_client: Any, standin_images: dict[str, str]
) -> None:
    import psycopg2

    image = standin_images["postgres"]
    env = {"POSTGRES_USER": "sbx", "POSTGRES_PASSWORD": "first-pw", "POSTGRES_DB": "sbxdb"}
    with volume(docker_client) as vol:
        port = free_port()
        mounts = {vol: {"bind": "/var/lib/postgresql/data", "mode": "rw"}}
        with running(
            docker_client, image, environment=env, volumes=mounts, ports={"5432/tcp": (LOOPBACK, port)}
        ) as pg:
            conn = _pg_ready(port, "sbx", "first-pw", "sbxdb")
            with conn, conn.cursor() as cur:
                cur.execute("SELECT current_user, current_database(), rolsuper FROM pg_roles WHERE rolname = current_user")
                assert cur.fetchone() == ("sbx", "sbxdb", True)
                cur.execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
            conn.close()
            with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
                _pg_connect(port, "sbx", "wrong", "sbxdb")
            # What the compose healthcheck calls, on PATH, and the data where PGDATA says.
            exec_ok(pg, ["pg_isready", "-U", "sbx", "-d", "sbxdb"])
            exec_ok(pg, ["test", "-s", "/var/lib/postgresql/data/PG_VERSION"])
            assert exec_ok(pg, ["printenv", "PGDATA"]).strip() == "/var/lib/postgresql/data"

        # A new container on the same volume skips initialisation: the old password and data stay.
        port = free_port()
        env2 = {**env, "POSTGRES_PASSWORD": "ignored-now"}
        with running(
            docker_client, image, environment=env2, volumes=mounts, ports={"5432/tcp": (LOOPBACK, port)}
        ) as pg:
            conn = _pg_ready(port, "sbx", "first-pw", "sbxdb")
            with conn, conn.cursor() as cur:
                cur.execute("SELECT v FROM kept")
                assert cur.fetchall() == [("still here",)]
            conn.close()
            assert "Skipping initialization" in pg.logs().decode()


def test_postgres_refuses_to_initialise_without_a_password(
    docker_client: Any, standin_images: dict[str, str]
) -> None:
    code, output = run_once(docker_client, standin_images["postgres"], None, timeout=60)
    assert code != 0
    assert "POSTGRES_PASSWORD" in output


# --- rabbitmq ---------------------------------------------------------------------------------


def test_rabbitmq_default_user_amqp_management_and_diagnostics(
    docker_client: Any, standin_images: dict[str, str]
) -> None:
    import amqp
    import httpx

    amqp_port, ui_port = free_port(), free_port()
    env = {"RABBITMQ_DEFAULT_USER": "sbx", "RABBITMQ_DEFAULT_PASS": "s3cret"}
    ports = {"5672/tcp": (LOOPBACK, amqp_port), "15672/tcp": (LOOPBACK, ui_port)}
    with running(docker_client, standin_images["rabbitmq"], environment=env, ports=ports) as mq:

        def port_open() -> bool:
            code, output = mq.exec_run(["rabbitmq-diagnostics", "-q", "check_port_connectivity"])
            return code == 0

        wait_until(port_open, what="rabbitmq stand-in listeners", timeout=90)
        # What compose healthchecks call, run as root through `exec` like they are.
        for check in ("ping", "check_port_connectivity", "status"):
            exec_ok(mq, ["rabbitmq-diagnostics", "-q", check])

        conn = amqp.Connection(host=f"{LOOPBACK}:{amqp_port}", userid="sbx", password="s3cret")
        conn.connect()
        channel = conn.channel()
        channel.queue_declare("contract", auto_delete=True)
        conn.close()
        with pytest.raises(Exception, match="ACCESS_REFUSED|Login was refused"):
            guest = amqp.Connection(host=f"{LOOPBACK}:{amqp_port}", userid="guest", password="guest")
            guest.connect()

        whoami = httpx.get(f"http://{LOOPBACK}:{ui_port}/api/whoami", auth=("sbx", "s3cret"), timeout=10)
        assert whoami.status_code == 200 and whoami.json()["name"] == "sbx"


# --- apache/airflow ---------------------------------------------------------------------------


def test_airflow_image_version_user_home_and_tools(docker_client: Any, standin_images: dict[str, str]) -> None:
    image = standin_images["airflow"]
    # `airflow ARGS` and bare `ARGS` both run the airflow CLI.
    for command in (["airflow", "version"], ["version"]):
        code, output = run_once(docker_client, image, command, environment=NO_WAIT)
        assert code == 0, output
        assert output.strip().splitlines()[-1] == airflow_version()

    probe = 'echo "$(id -u):$(id -g)|$AIRFLOW_HOME|$(pwd)|$(command -v curl)|$(command -v celery)"'
    code, output = run_once(docker_client, image, ["bash", "-c", probe], environment=NO_WAIT)
    assert code == 0, output
    assert output.strip() == "50000:0|/opt/airflow|/opt/airflow|/usr/bin/curl|/home/airflow/.local/bin/celery"

    code, output = run_once(docker_client, image, ["python", "-c", "print(6 * 7)"], environment=NO_WAIT)
    assert (code, output.strip()) == (0, "42")


def test_airflow_image_has_the_pinned_airflow_and_provider_versions(
    docker_client: Any, standin_images: dict[str, str]
) -> None:
    lock = dict(
        line.split("==", 1)
        for line in (REPO / "requirements.lock").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    wanted = {k: v for k, v in lock.items() if k.startswith("apache-airflow") or k in ("celery", "kombu")}
    assert "apache-airflow-providers-celery" in wanted
    script = (
        "import importlib.metadata as m, sys\n"
        "for name in sys.argv[1:]: print(name, m.version(name))\n"
    )
    code, output = run_once(
        docker_client, standin_images["airflow"], ["python", "-c", script, *wanted], environment=NO_WAIT
    )
    assert code == 0, output
    installed = dict(line.split(" ", 1) for line in output.strip().splitlines())
    assert installed == wanted


def test_airflow_image_runs_as_an_arbitrary_uid_only_with_gid_0(
    docker_client: Any, standin_images: dict[str, str]
) -> None:
    image = standin_images["airflow"]
    # podman itself adds a passwd entry for an unknown UID; Docker does not, and then the
    # entrypoint adds one. Either way the user has a name, and group 0 may write AIRFLOW_HOME.
    probe = "whoami >/dev/null && id -u && id -g && touch /opt/airflow/logs/probe && echo writable"
    code, output = run_once(docker_client, image, ["bash", "-c", probe], user="12345:0", environment=NO_WAIT)
    assert code == 0, output
    assert output.split() == ["12345", "0", "writable"]

    code, output = run_once(docker_client, image, ["version"], user="12345:12345", environment=NO_WAIT)
    assert code == 1
    assert "GID 0" in output


@pytest.fixture
def airflow_db(docker_client: Any, standin_images: dict[str, str]) -> Any:
    """A private network with a fresh postgres stand-in; yields (network, SQLAlchemy URL)."""
    with network(docker_client) as net:
        name = unique("pg")
        env = {"POSTGRES_USER": "airflow", "POSTGRES_PASSWORD": "airflow", "POSTGRES_DB": "airflow"}
        with running(docker_client, standin_images["postgres"], name=name, environment=env, network=net) as pg:

            def ready() -> bool:
                # TCP, as other containers connect (the init server listens on the socket only).
                code, _ = pg.exec_run(["pg_isready", "-h", "127.0.0.1", "-U", "airflow"])
                return code == 0

            wait_until(ready, what="postgres stand-in", timeout=90)
            yield net, f"postgresql+psycopg2://airflow:airflow@{name}:5432/airflow"


def test_airflow_db_migrate_variable_migrates_before_the_command(
    docker_client: Any, standin_images: dict[str, str], airflow_db: Any
) -> None:
    net, url = airflow_db
    image = standin_images["airflow"]
    env = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url, "CONNECTION_CHECK_SLEEP_TIME": "1"}
    check = ["airflow", "db", "check-migrations", "-t", "0"]

    code, output = run_once(docker_client, image, check, environment=env, network=net)
    assert code != 0, f"an empty database passed check-migrations: {output}"

    code, output = run_once(
        docker_client, image, check, environment={**env, "_AIRFLOW_DB_MIGRATE": "true"}, network=net
    )
    assert code == 0, output
    assert "Database migrating done" in output or "migrat" in output.lower()


def test_airflow_www_user_create_needs_a_password_and_never_blocks_the_command(
    docker_client: Any, standin_images: dict[str, str]
) -> None:
    """With SimpleAuthManager `airflow users create` does not exist: only the password check bites."""
    image = standin_images["airflow"]
    env = {**NO_WAIT, "_AIRFLOW_WWW_USER_CREATE": "true"}
    code, output = run_once(docker_client, image, ["version"], environment=env)
    assert code == 1
    assert "_AIRFLOW_WWW_USER_PASSWORD" in output

    code, output = run_once(
        docker_client, image, ["version"], environment={**env, "_AIRFLOW_WWW_USER_PASSWORD": "pw"}
    )
    assert code == 0, output
    assert output.strip().splitlines()[-1] == airflow_version()


def test_airflow_scheduler_and_celery_worker_answer_their_healthcheck_commands(
    docker_client: Any, standin_images: dict[str, str], airflow_db: Any
) -> None:
    """`airflow jobs check`, `curl` and `celery ... inspect ping`, as compose healthchecks run them.

    The worker's ping names the node from `hostname`: podman's exec sessions lack $HOSTNAME.
    """
    net, url = airflow_db
    broker = unique("mq")
    mq_env = {"RABBITMQ_DEFAULT_USER": "airflow", "RABBITMQ_DEFAULT_PASS": "airflow"}
    env = {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url,
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CELERY__BROKER_URL": f"amqp://airflow:airflow@{broker}:5672//",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + url.replace("+psycopg2", ""),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
        "CONNECTION_CHECK_SLEEP_TIME": "1",
        "_AIRFLOW_DB_MIGRATE": "true",
    }
    image = standin_images["airflow"]
    with running(docker_client, standin_images["rabbitmq"], name=broker, environment=mq_env, network=net):
        code, output = run_once(docker_client, image, ["bash", "-c", "true"], environment=env, network=net)
        assert code == 0, output
        env.pop("_AIRFLOW_DB_MIGRATE")
        with running(docker_client, image, command=["scheduler"], environment=env, network=net) as scheduler, \
                running(docker_client, image, command=["celery", "worker"], environment=env, network=net) as worker:

            def healthy(container: Any, cmd: str) -> bool:
                container.reload()
                if container.status != "running":
                    raise AssertionError(f"{container.name} stopped:\n{container.logs().decode()[-3000:]}")
                code, _ = container.exec_run(["bash", "-c", cmd])
                return code == 0

            wait_until(
                lambda: healthy(scheduler, 'airflow jobs check --job-type SchedulerJob --hostname "$(hostname)"'),
                what="scheduler job heartbeat",
                timeout=180,
                interval=2,
            )
            wait_until(
                lambda: healthy(scheduler, "curl --fail --silent http://localhost:8974/health"),
                what="scheduler health server answering curl",
                timeout=60,
                interval=1,
            )
            wait_until(
                lambda: healthy(worker, f'celery --app {CELERY_APP} inspect ping -d "celery@$(hostname)"'),
                what="celery worker answering ping",
                timeout=180,
                interval=2,
            )


# --- azurite ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        None,  # the image's default: every service on 0.0.0.0, data in /data
        ["azurite-blob", "--blobHost", "0.0.0.0", "--blobPort", "10000", "--location", "/data",
         "--loose", "--skipApiVersionCheck"],
    ],
    ids=["default-command", "azurite-blob"],
)
def test_azurite_serves_blobs_and_keeps_them_in_data(
    docker_client: Any, standin_images: dict[str, str], command: list[str] | None
) -> None:
    from azure.core.exceptions import ServiceRequestError
    from azure.storage.blob import BlobServiceClient

    from sandbox.core import blob

    port = free_port()
    with running(
        docker_client, standin_images["azurite"], command=command, ports={"10000/tcp": (LOOPBACK, port)}
    ) as az:
        # Without --skipApiVersionCheck Azurite refuses API versions newer than it knows, as the
        # real image does; the SDK here is newer than Azurite 3.35, so pin an older version.
        api = {} if command else {"api_version": "2021-08-06"}
        service = BlobServiceClient.from_connection_string(
            blob.connection_string(blob.blob_endpoint(LOOPBACK, port)), **api
        )
        container = wait_until(
            lambda: service.create_container(unique("contract")),
            what="azurite stand-in blob endpoint",
            timeout=60,
            transient=(ServiceRequestError,),
        )
        container.upload_blob("hello.txt", b"hello from the stand-in")
        assert container.download_blob("hello.txt").readall() == b"hello from the stand-in"
        listing = exec_ok(az, ["ls", "/data"])
        assert re.search(r"__blobstorage__|__azurite_db_blob", listing), listing
        # Healthchecks may use the image's Node.js (the official image is node:alpine based).
        probe = "require('net').connect(10000,'127.0.0.1').on('connect',()=>process.exit(0))"
        exec_ok(az, ["node", "-e", probe])
