"""`up` / `down` / `status` orchestration with recording fakes at the boundaries that cannot run here.

kind and compose v2 are simulated by a RecordingRunner whose answers follow a small world model
(clusters that exist, containers that run), and the Kubernetes API by FakeKube; the tests
assert on the exact commands and API requests. Everything else is real: settings, state dir,
secrets, rendered env files, doctor's port and disk checks, wait_until.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fakes import FakeKube, RecordingRunner, fail, ok
from sandbox.adapters.airflow_api import fetch_health
from sandbox.adapters.compose import ComposeCommand, ComposeProject, down_argv, logs_argv, up_argv
from sandbox.adapters.crictl import CRICTL_IMAGES
from sandbox.adapters.docker_images import BuildFailed, BuildFailure
from sandbox.adapters.kind import create_argv, delete_argv, load_docker_image_argv
from sandbox.adapters.runtime import Engine, Runtime
from sandbox.config import Ports, Settings, Timeouts
from sandbox.core import stack
from sandbox.core.images import discover, plan
from sandbox.core.kind_config import declared_nodes
from sandbox.core.stack_files import check_not_renamed, compose_files, read_mode
from sandbox.core.stack_status import status as stack_status
from sandbox.core.wiring import Adapters
from sandbox.errors import ClusterError, ConfigError, ImageBuildError, LockHeld, PrerequisiteError, StackError, WaitTimeout
from sandbox.models import ImageInfo
from sandbox.resources import shipped
from sandbox.progress import SilentReporter
from sandbox.proc import Completed
from sandbox.state import StateDir

REPO = Path(__file__).resolve().parent.parent.parent
SERVICES = [
    "postgres", "rabbitmq", "azurite", "airflow-init", "airflow-apiserver", "airflow-scheduler",
    "airflow-dag-processor", "airflow-triggerer", "airflow-worker",
]
V2 = ComposeCommand(("docker", "compose"), "2.29.7")
DOCKER = Runtime("docker", Engine("unix:///var/run/docker.sock", False, "27.3.1", 16 << 30, "", False, "linux"), 1000, False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class StackEngine:
    """The engine's image API as `up` uses it: a build records its tag (or fails, when queued in
    `failing_builds`); a kind node answers `crictl images` with what `kind load` put on it."""

    def __init__(self) -> None:
        self.builds: list[str] = []
        self.ids: dict[str, str] = {}
        self.on_nodes: dict[str, list[dict]] = {}
        self.failing_builds: list[bool] = []

    def inspect(self, reference: str) -> ImageInfo | None:
        image_id = self.ids.get(reference)
        return ImageInfo(image_id, (reference,), 1024, "2026-11-30T00:00:00Z") if image_id else None

    def build(self, context: object, *, tag: str, **kwargs: object) -> str:
        self.builds.append(tag)
        if self.failing_builds and self.failing_builds.pop(0):
            raise BuildFailed("RUN false: exit 1", BuildFailure("exit 1", "RUN false", []))
        self.ids[tag] = f"sha256:{len(self.builds):064x}"
        return self.ids[tag]

    def exec(self, container: str, argv: object) -> str:
        assert tuple(argv) == CRICTL_IMAGES  # type: ignore[arg-type]
        return json.dumps({"images": self.on_nodes.get(container, [])})

    def load(self, argv: list[str]) -> Completed:
        """What `kind load docker-image REF --name N --nodes A,B` does to the nodes' images."""
        reference = argv[3]
        for node in argv[argv.index("--nodes") + 1].split(","):
            self.on_nodes.setdefault(node, []).append(
                {"id": self.ids[reference], "repoTags": [reference], "repoDigests": [], "size": "1024"}
            )
        return ok()

    def save(self, reference: str, destination: Path) -> None:
        raise AssertionError("kind load docker-image works here: no archive")

    def remove(self, reference: str) -> None:
        raise AssertionError("up removes no image")


class NamedTools:
    """kind and kubectl as found on PATH (the `kind` of the recording runner's script)."""

    def find(self, name: str) -> Path:
        return Path(name)

    def ensure(self, name: str, on_info: object) -> Path:
        return Path(name)


@dataclass
class World:
    """What kind and compose would report; the runner's answers read and change it."""

    settings: Settings
    clusters: set[str] = field(default_factory=set)
    containers: dict[str, dict] = field(default_factory=dict)  # service -> ps JSON object
    fail_create: bool = False
    fail_compose_up: bool = False
    interrupt_compose_up: bool = False
    health_after_up: dict[str, str] = field(default_factory=dict)  # service -> health to report
    logs: str = "scheduler | cannot connect to the database\nscheduler | giving up"
    engine: StackEngine = field(default_factory=StackEngine)

    def ps_object(self, service: str) -> dict:
        one_shot = service == "airflow-init"
        health = "" if one_shot else self.health_after_up.get(service, "healthy")
        port = {"airflow-apiserver": self.settings.ports.api, "rabbitmq": self.settings.ports.rabbitmq_ui}.get(service)
        return {
            "Name": f"demo-{service}-1", "Service": service, "Project": "demo",
            "State": "exited" if one_shot else "running", "Health": health, "ExitCode": 0,
            "Publishers": [{"URL": "127.0.0.1", "TargetPort": 1, "PublishedPort": port, "Protocol": "tcp"}] if port else None,
        }

    def runner(self) -> RecordingRunner:
        name = self.settings.cluster_name
        nodes = [n.name for n in declared_nodes(self.settings)]

        def create(argv: list[str]) -> Completed:
            if self.fail_create:
                return fail("ERROR: failed to create cluster: node(s) already exist for a cluster with the name")  # type: ignore[return-value]
            self.clusters.add(name)
            return ok()

        def delete(argv: list[str]) -> Completed:
            self.clusters.discard(name)
            return ok()

        def compose_up(argv: list[str]) -> Completed:
            if self.interrupt_compose_up:
                self.interrupt_compose_up = False
                raise KeyboardInterrupt
            if self.fail_compose_up:
                return fail("dependency failed to start: container demo-postgres-1 is unhealthy")  # type: ignore[return-value]
            self.containers = {s: self.ps_object(s) for s in SERVICES}
            return ok()

        def compose_down(argv: list[str]) -> Completed:
            self.containers = {}
            return ok()

        return RecordingRunner({
            r"^docker compose version": ok("2.29.7\n"),
            r"^kind get clusters": lambda argv: ok("\n".join(sorted(self.clusters))),
            r"^kind create cluster": create,
            r"^kind delete cluster": delete,
            r"^kind get nodes": ok("\n".join(nodes)),
            r"^kind get kubeconfig": ok("apiVersion: v1\nkind: Config\nclusters: []\n"),
            r"^kind load docker-image ": self.engine.load,
            r"^docker compose .* up -d( --no-recreate)?$": compose_up,
            r"^docker compose .* down": compose_down,
            r"^docker compose .* ps --all --format json": lambda argv: ok("\n".join(json.dumps(c) for c in self.containers.values())),
            r"^docker compose .* config --services": ok("\n".join(SERVICES) + "\n"),
            r"^docker compose .* logs": lambda argv: ok(self.logs),
            r"^docker inspect --format \{\{json \.State\.Health\}\}": lambda argv: ok(json.dumps(self.health_of(argv[-1]))),
        }, strict=True)

    def health_of(self, container: str) -> dict:
        service = container.removeprefix("demo-").removesuffix("-1")
        status = self.health_after_up.get(service, "healthy")
        failing = status != "healthy"
        output = "curl: (7) Failed to connect to localhost port 8974" if failing else ""
        return {"Status": status, "FailingStreak": int(failing), "Log": [{"ExitCode": int(failing), "Output": output}]}


@dataclass
class Rig:
    settings: Settings
    world: World
    runner: RecordingRunner
    kube: FakeKube
    adapters: Adapters
    reporter: SilentReporter = field(default_factory=SilentReporter)

    def up(self, **kwargs) -> stack.UpResult:
        self.reporter = SilentReporter()
        return stack.up(self.settings, self.reporter, self.adapters, **kwargs)

    def fresh_adapters(self) -> None:
        """A new process: nothing cached between two CLI invocations."""
        self.adapters = _adapters(self.settings, self.runner, self.kube, self.world.engine)

    @property
    def project(self) -> ComposeProject:
        return ComposeProject("demo", compose_files(self.settings, "full"), StateDir(self.settings.state_dir).compose_env_file)

    def image_loads(self) -> list[list[str]]:
        return [argv for argv in self.runner.argvs if argv[:3] == ["kind", "load", "docker-image"]]

    def task_image_ref(self) -> str:
        [image] = discover(self.settings)
        return plan(image).canonical_ref


def _adapters(settings: Settings, runner: RecordingRunner, kube: FakeKube, engine: StackEngine) -> Adapters:
    return Adapters(
        settings, runtime=DOCKER, runner=runner, tools=NamedTools(),
        kube_factory=lambda path: kube, image_engine=engine,
    )


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    shutil.copy(REPO / "kind-config.yaml", tmp_path / "kind-config.yaml")
    (tmp_path / "sample_dags" / "images" / "recommend").mkdir(parents=True)
    (tmp_path / "sample_dags" / "images" / "recommend" / "Dockerfile").write_text("FROM python:3.12-slim\n")
    settings = Settings(
        project_dir=tmp_path, name="demo",
        ports=Ports(api=_free_port(), rabbitmq_ui=_free_port(), flower=_free_port(), azurite_blob=_free_port()),
        timeouts=Timeouts(node_ready=1, stack_healthy=0.5),
    )
    world = World(settings)
    runner = world.runner()
    kube = FakeKube.from_specs(declared_nodes(settings))
    return Rig(settings, world, runner, kube, _adapters(settings, runner, kube, world.engine))


def _index(lines: list[str], pattern: str) -> int:
    return next(i for i, line in enumerate(lines) if re.search(pattern, line))


def test_up_runs_every_step_in_order_with_the_exact_commands(rig: Rig) -> None:
    result = rig.up()
    state = StateDir(rig.settings.state_dir)
    lines = rig.runner.lines
    order = [
        _index(lines, r"compose version"),  # doctor
        _index(lines, r"^kind create cluster"),
        _index(lines, r"^kind get kubeconfig"),
        _index(lines, r" up -d$"),
    ]
    assert order == sorted(order)
    assert sum(line.endswith("compose version --short") for line in lines) == 1  # compose found once per up
    assert rig.runner.argvs[order[1]] == create_argv(
        "demo", state.rendered_kind_config, wait="1s", kubeconfig=state.admin_kubeconfig
    )
    assert rig.runner.argvs[order[3]] == up_argv(V2, rig.project)
    assert rig.project.files == (rig.settings.compose_file, rig.settings.compose_file.parent / "kind.yaml")
    assert all(c.env == {"DOCKER_HOST": "unix:///var/run/docker.sock"} for c in rig.runner.calls if c.argv[0] == "docker")
    writes = rig.kube.writes()
    virtual = next(n.name for n in declared_nodes(rig.settings) if n.is_virtual_node)
    assert writes[0] == ("PATCH", f"Node {virtual}")
    kinds = [w[1].split()[0] for w in writes if w[0] == "APPLY"]
    assert kinds.index("Namespace") < kinds.index("ServiceAccount") < kinds.index("ValidatingAdmissionPolicy")
    assert writes[-1] == ("APPLY", "Secret sandbox-tasks/sandbox-blob")
    secret = rig.kube.objects["/api/v1/namespaces/sandbox-tasks/secrets/sandbox-blob"]
    assert "BlobEndpoint=http://demo-azurite:10000/devstoreaccount1;" in secret["stringData"]["connection_string"]
    # images last: built, then loaded by the kind of this runtime into the nodes pods run on
    ref = rig.task_image_ref()
    assert rig.world.engine.builds == [ref]
    assert rig.image_loads() == [load_docker_image_argv("demo", ref, ["demo-worker", "demo-worker2"])]
    assert lines.index(" ".join(rig.image_loads()[0])) > order[3]
    assert result.mode == "full" and result.user == "admin" and result.password == state.secrets().admin_password
    assert {s.service for s in result.services} == set(SERVICES)
    assert read_mode(state) == "full"
    env = state.airflow_env_file.read_text()
    assert "AIRFLOW_CONN_KUBERNETES_DEFAULT=" in env and "SANDBOX_CLUSTER=kind" in env
    for path in (state.airflow_env_file, state.compose_env_file):
        assert path.stat().st_mode & 0o777 == 0o600


def test_a_second_up_only_verifies(rig: Rig) -> None:
    rig.up()
    before = len(rig.runner.calls)
    requests_before = len(rig.kube.writes())
    rig.fresh_adapters()
    rig.up()
    second = rig.runner.lines[before:]
    assert not [line for line in second if "create cluster" in line or " up -d" in line or "delete" in line]
    assert any(" ps --all" in line for line in second)  # it did verify the stack
    assert rig.reporter.steps.count("verify the Airflow stack") == 1
    assert "airflow stack (compose up)" not in rig.reporter.steps
    # re-applying is server-side apply (idempotent); no node is re-labelled
    assert ("PATCH", "Node demo-worker2") not in rig.kube.writes()[requests_before:]


def test_a_changed_compose_input_is_applied_by_the_next_up(rig: Rig) -> None:
    rig.up()
    override = rig.settings.project_dir / "compose.override.yaml"
    override.write_text("# added by the user\n")
    before = len(rig.runner.calls)
    rig.fresh_adapters()
    rig.up()
    assert any(line.endswith(" up -d") for line in rig.runner.lines[before:])
    assert any(f"-f {override} " in line for line in rig.runner.lines[before:])


def test_the_project_files_win_over_the_packaged_ones(tmp_path: Path) -> None:
    packaged = Settings(project_dir=tmp_path)
    assert packaged.kind_config == shipped("kind-config.yaml")
    assert packaged.compose_file == shipped("compose") / "docker-compose.yaml"
    assert compose_files(packaged, "full") == (packaged.compose_file, shipped("compose") / "kind.yaml")
    assert all("packaged default" in s for s in packaged.file_sources().values())
    (tmp_path / "kind-config.yaml").write_text("kind: Cluster\n")
    (tmp_path / "compose").mkdir()
    (tmp_path / "compose" / "docker-compose.yaml").write_text("services: {}\n")
    (tmp_path / "compose.override.yaml").write_text("services: {}\n")
    own = Settings(project_dir=tmp_path)
    assert own.kind_config == tmp_path / "kind-config.yaml"
    assert compose_files(own, "stack-only") == (
        tmp_path / "compose" / "docker-compose.yaml", tmp_path / "compose.override.yaml",
    )
    assert own.file_sources() == {
        "kind config": f"{tmp_path / 'kind-config.yaml'} (project)",
        "compose": f"{tmp_path / 'compose' / 'docker-compose.yaml'} (project)",
        "compose override": f"{tmp_path / 'compose.override.yaml'} (project)",
    }


def test_a_stopped_service_is_started_without_recreating_the_healthy_rest(rig: Rig) -> None:
    rig.up()
    rig.world.containers["airflow-worker"] = {**rig.world.containers["airflow-worker"], "State": "exited", "ExitCode": 137}
    before = len(rig.runner.calls)
    rig.fresh_adapters()
    rig.up()
    assert [line for line in rig.runner.lines[before:] if " up -d" in line][0].endswith(" up -d --no-recreate")


def test_stack_only_skips_the_cluster_and_images(rig: Rig) -> None:
    result = rig.up(stack_only=True)
    state = StateDir(rig.settings.state_dir)
    assert not [line for line in rig.runner.lines if line.startswith("kind")]
    assert rig.kube.requests == [] and rig.world.engine.builds == [] and rig.image_loads() == []
    project = ComposeProject("demo", (rig.settings.compose_file,), state.compose_env_file)
    assert up_argv(V2, project) in rig.runner.argvs
    assert result.mode == "stack-only" and read_mode(state) == "stack-only"
    env = state.airflow_env_file.read_text()
    assert "AIRFLOW_CONN_KUBERNETES_DEFAULT" not in env and "SANDBOX_CLUSTER=none" in env


def test_stack_only_down_never_needs_kind(rig: Rig) -> None:
    rig.up(stack_only=True)
    stack.down(rig.settings, SilentReporter(), rig.adapters)
    assert not [line for line in rig.runner.lines if line.startswith("kind")]


@pytest.mark.parametrize("step", ["doctor", "cluster", "nodes", "compose", "health", "images"])
def test_up_resumes_after_a_failure_at_each_step(rig: Rig, step: str) -> None:
    rig.world.engine.failing_builds = [step == "images"]
    blocker = None
    if step == "doctor":
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", rig.settings.ports.api))
        blocker.listen()
    rig.world.fail_create = step == "cluster"
    rig.kube.unreachable = step == "nodes"
    rig.world.fail_compose_up = step == "compose"
    if step == "health":
        rig.world.health_after_up = {"airflow-scheduler": "unhealthy"}
    expected = {
        "doctor": PrerequisiteError, "cluster": ClusterError, "nodes": WaitTimeout,
        "compose": StackError, "health": StackError, "images": ImageBuildError,
    }[step]
    message = {
        "doctor": f"port {rig.settings.ports.api} on 127.0.0.1 (api) is already in use",
        "cluster": "kind could not create cluster demo",
        "nodes": "waiting for the nodes of cluster demo to be Ready; last state: cannot reach the Kubernetes API",
        "compose": "the Airflow stack did not come up: dependency failed to start",
        "health": "service airflow-scheduler is unhealthy",
        "images": "task image 'recommend' failed to build at `RUN false`",
    }[step]
    with pytest.raises(expected, match=re.escape(message)):
        rig.up()
    created_before = sum("create cluster" in line for line in rig.runner.lines)
    # fix the cause, run again
    if blocker is not None:
        blocker.close()
    rig.world.fail_create = rig.world.fail_compose_up = rig.kube.unreachable = False
    rig.world.health_after_up = {}
    rig.fresh_adapters()
    result = rig.up()
    assert result.mode == "full"
    assert rig.image_loads() == [load_docker_image_argv("demo", rig.task_image_ref(), ["demo-worker", "demo-worker2"])]
    created = sum("create cluster" in line for line in rig.runner.lines)
    if step == "doctor":
        assert created == 1  # created on the second run only
    elif step == "cluster":
        assert created == 2  # the failed attempt, then the one that worked
    else:
        assert created == created_before == 1  # the cluster made before the failure is kept


def test_ctrl_c_during_compose_up_releases_the_lock_and_resumes(rig: Rig) -> None:
    rig.world.interrupt_compose_up = True
    with pytest.raises(KeyboardInterrupt):
        rig.up()
    rig.fresh_adapters()
    assert rig.up().mode == "full"
    assert sum("create cluster" in line for line in rig.runner.lines) == 1


def test_a_failing_healthcheck_is_reported_with_that_services_last_log_lines(rig: Rig) -> None:
    rig.world.health_after_up = {"airflow-scheduler": "unhealthy"}
    with pytest.raises(StackError) as exc:
        rig.up(stack_only=True)
    assert exc.value.message.startswith(
        "service airflow-scheduler is unhealthy (its healthcheck exited 1: curl: (7) Failed to connect to localhost "
        "port 8974); its last log lines:\n"
    )
    assert ["docker", "inspect", "--format", "{{json .State.Health}}", "demo-airflow-scheduler-1"] in rig.runner.argvs
    assert "cannot connect to the database" in exc.value.message
    assert "sandbox logs airflow-scheduler" in (exc.value.hint or "")
    project = ComposeProject("demo", (rig.settings.compose_file,), StateDir(rig.settings.state_dir).compose_env_file)
    assert logs_argv(V2, project, ["airflow-scheduler"], tail=20) in rig.runner.argvs


def test_a_service_stuck_starting_times_out_naming_it(rig: Rig) -> None:
    rig.world.health_after_up = {"airflow-worker": "starting"}
    with pytest.raises(StackError, match=r"^service airflow-worker is starting \(its healthcheck exited 1: .*\); its last log lines"):
        rig.up(stack_only=True)


def test_a_failed_compose_up_names_the_unhealthy_dependency(rig: Rig) -> None:
    rig.world.fail_compose_up = True
    rig.world.health_after_up = {"postgres": "unhealthy"}
    rig.world.containers = {"postgres": rig.world.ps_object("postgres")}
    with pytest.raises(StackError, match=r"^service postgres is unhealthy \(.*\); its last log lines"):
        rig.up(stack_only=True)


def test_up_refuses_while_another_command_holds_the_lock(rig: Rig) -> None:
    with StateDir(rig.settings.state_dir).lock("down"):
        with pytest.raises(LockHeld, match="sandbox down"):
            rig.up()
    assert rig.runner.calls == []


def test_down_keeps_data_and_purge_removes_everything(rig: Rig) -> None:
    rig.up()
    state = StateDir(rig.settings.state_dir)
    secrets = state.secrets()
    before = len(rig.runner.calls)
    result = stack.down(rig.settings, SilentReporter(), rig.adapters)
    lines = rig.runner.argvs[before:]
    assert lines[0] == down_argv(V2, rig.project)  # no --volumes: the database stays
    assert delete_argv("demo", kubeconfig=state.admin_kubeconfig) in lines
    assert result.removed == ("containers", "cluster demo") and not result.purged
    assert state.secrets() == secrets and state.airflow_env_file.exists()  # state kept
    assert read_mode(state) is None
    # up again: same secrets (the kept volume's password), cluster recreated
    rig.fresh_adapters()
    rig.up()
    assert state.secrets() == secrets
    before = len(rig.runner.calls)
    result = stack.down(rig.settings, SilentReporter(), rig.adapters, purge=True)
    lines = rig.runner.argvs[before:]
    assert lines[0] == down_argv(V2, rig.project, volumes=True)
    assert any(argv[:3] == ["kind", "delete", "cluster"] for argv in lines)
    assert not state.path.exists() and result.purged


def test_airflow_requirements_run_the_extended_image_and_a_change_recreates_the_stack(rig: Rig) -> None:
    import dataclasses

    from sandbox.core.images.airflow import EXTENDED_REPOSITORY

    requirements = rig.settings.project_dir / "requirements-airflow.txt"
    requirements.write_text("pandas==2.2.3\n")
    rig.settings = dataclasses.replace(rig.settings, airflow_requirements=requirements)
    engine = rig.world.engine
    rig.fresh_adapters()
    rig.up()
    state = StateDir(rig.settings.state_dir)
    [ref] = [tag for tag in engine.builds if tag.startswith(EXTENDED_REPOSITORY)]
    assert ref.startswith(EXTENDED_REPOSITORY + ":")
    assert f"SANDBOX_AIRFLOW_IMAGE={ref}\n" in state.compose_env_file.read_text()
    before = len(rig.runner.calls)
    rig.up()  # unchanged: no build, no compose up
    assert engine.builds.count(ref) == 1 and not any(c.line.endswith(" up -d") for c in rig.runner.calls[before:])
    requirements.write_text("pandas==2.2.3\npyarrow==18.1.0\n")
    before = len(rig.runner.calls)
    rig.up()
    extended = [tag for tag in engine.builds if tag.startswith(EXTENDED_REPOSITORY)]
    assert len(extended) == 2 and extended[1] != ref
    assert any(c.line.endswith(" up -d") for c in rig.runner.calls[before:])  # the new image runs


def test_a_renamed_sandbox_is_refused_until_the_old_one_is_down(rig: Rig) -> None:
    """Changing `name` while the old cluster and containers run would orphan them: up and down
    refuse, naming the old name and the command that stops it; after that, the rename goes."""
    import dataclasses

    rig.up()
    renamed = dataclasses.replace(rig.settings, name="other")
    state = StateDir(rig.settings.state_dir)
    before = len(rig.runner.calls)
    for action in (lambda: stack.up(renamed, SilentReporter(), rig.adapters),
                   lambda: stack.down(renamed, SilentReporter(), rig.adapters)):
        with pytest.raises(ConfigError, match="runs as 'demo', but the configured name is now 'other'") as err:
            action()
        assert "SANDBOX_NAME=demo sandbox down" in (err.value.hint or "")
    assert len(rig.runner.calls) == before  # nothing was touched
    stack.down(rig.settings, SilentReporter(), rig.adapters)
    check_not_renamed(renamed, state)  # the old one is down: renaming is fine now


def test_airflow_cli_runs_in_the_scheduler_on_this_terminal(rig: Rig) -> None:
    with pytest.raises(StackError, match="the sandbox is not up"):
        stack.airflow_cli(rig.settings, ["dags", "list"], rig.adapters, tty=False)
    rig.up()
    rig.runner.on(r" exec ", fail("", returncode=3))  # a failing airflow command: its exit code, no exception
    before = len(rig.runner.calls)
    assert stack.airflow_cli(rig.settings, ["tasks", "test", "recommend", "rank", "2021-12-01"], rig.adapters, tty=False) == 3
    [call] = [c for c in rig.runner.calls[before:] if " exec " in c.line]
    assert call.argv[call.argv.index("exec"):] == [
        "exec", "-T", "airflow-scheduler", "airflow", "tasks", "test", "recommend", "rank", "2021-12-01"
    ]
    assert call.argv[:2] == ["docker", "compose"] and call.attached
    stack.airflow_cli(rig.settings, ["db", "shell"], rig.adapters, tty=True)
    assert rig.runner.calls[-1].argv[rig.runner.calls[-1].argv.index("exec") + 1] == "airflow-scheduler"
    rig.world.containers.pop("airflow-scheduler")
    with pytest.raises(StackError, match="airflow-scheduler is not running"):
        stack.airflow_cli(rig.settings, ["dags", "list"], rig.adapters, tty=False)


RECORDED_HEALTH = json.loads((REPO / "tests/fixtures/compose/airflow_health.json").read_text())


RECORDED_IMPORT_ERRORS = json.loads((REPO / "tests/fixtures/airflow/import_errors.json").read_text())


@contextmanager
def airflow_health(port: int, document: dict, import_errors: dict | None = None) -> Iterator[None]:
    """A loopback server answering where Airflow would: GET /api/v2/monitor/health with `document`,
    POST /auth/token, GET /api/v2/importErrors with `import_errors` (none by default)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    errors = import_errors or {"import_errors": [], "total_entries": 0}

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, body: object | None) -> None:
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            self.wfile.write(json.dumps(body if body is not None else {}).encode())

        def do_GET(self) -> None:  # noqa: N802
            path, _, query = self.path.partition("?")
            first_page = "offset=0" in query
            pages = {"/api/v2/monitor/health": document,
                     "/api/v2/importErrors": errors if first_page else {**errors, "import_errors": []}}
            self._answer(pages.get(path))

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self._answer({"access_token": "recorded"} if self.path == "/auth/token" else None)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def test_status_shape_and_health(rig: Rig) -> None:
    rig.up()
    rig.fresh_adapters()
    with airflow_health(rig.settings.ports.api, RECORDED_HEALTH):
        healthy = stack_status(rig.settings, rig.adapters)
    data = healthy.to_json()
    assert set(data) == {"healthy", "mode", "runtime", "cluster", "services", "missing_services", "api", "login", "problems",
                         "dag_import_errors"}
    assert data["dag_import_errors"] == []
    assert data["healthy"] is True and data["mode"] == "full" and data["runtime"] == "docker"
    assert data["cluster"]["ok"] is True
    assert {n["name"] for n in data["cluster"]["nodes"]} == {n.name for n in declared_nodes(rig.settings)}
    virtual = next(n for n in data["cluster"]["nodes"] if n["is_virtual_node"])
    assert virtual["labels"]["type"] == "virtual-kubelet" and "virtual-kubelet.io/provider=azure:NoSchedule" in virtual["taints"]
    assert {s["service"] for s in data["services"]} == set(SERVICES)
    assert set(data["services"][0]) == {"service", "container", "state", "health", "exit_code", "published_ports"}
    assert data["api"]["url"] == rig.settings.api_url and data["api"]["error"] is None
    assert {k: v["status"] for k, v in data["api"]["health"].items()} == {
        "metadatabase": "healthy", "scheduler": "healthy", "triggerer": "healthy", "dag_processor": "healthy",
    }  # what the recorded answer says, read over HTTP by the real client
    assert data["login"]["user"] == "admin" and data["login"]["password"]
    json.dumps(data)  # serialisable as is

    rig.world.containers["airflow-worker"]["Health"] = "unhealthy"
    del rig.world.containers["airflow-triggerer"]
    sick_health = {**RECORDED_HEALTH, "scheduler": {**RECORDED_HEALTH["scheduler"], "status": "unhealthy"}}
    with airflow_health(rig.settings.ports.api, sick_health):
        sick = stack_status(rig.settings, rig.adapters)
    assert not sick.healthy
    assert set(sick.problems) == {
        "service airflow-triggerer is not running", "service airflow-worker is unhealthy", "Airflow reports scheduler unhealthy",
    }
    with airflow_health(rig.settings.ports.api, RECORDED_HEALTH, RECORDED_IMPORT_ERRORS):
        broken_dag = stack_status(rig.settings, rig.adapters)
    # a DAG file that does not import is listed with its last line; it is not a stack problem
    assert set(broken_dag.problems) == {"service airflow-triggerer is not running", "service airflow-worker is unhealthy"}
    assert broken_dag.to_json()["dag_import_errors"] == [
        {"file": "sbx_broken.py", "error": "ModuleNotFoundError: No module named 'sbx_module_that_does_not_exist'"}
    ]
    down = stack_status(rig.settings, rig.adapters)  # nothing answers on the API port
    assert down.api is None and "did not answer its health check" in (down.api_error or "")


def test_status_when_nothing_is_up(rig: Rig) -> None:
    result = stack_status(rig.settings, rig.adapters)
    assert not result.healthy and result.mode is None and result.services == ()
    assert rig.runner.calls == []


def test_api_health_is_read_from_a_real_http_server() -> None:
    """fetch_health against a local server answering the health recorded from the real stack."""
    port = _free_port()
    with airflow_health(port, RECORDED_HEALTH):
        health = fetch_health(f"http://127.0.0.1:{port}")
    assert {k: v["status"] for k, v in health.items()} == {
        "metadatabase": "healthy", "scheduler": "healthy", "triggerer": "healthy", "dag_processor": "healthy",
    }
    with pytest.raises(StackError, match="did not answer its health check"):
        fetch_health(f"http://127.0.0.1:{_free_port()}")
