"""sandbox.core.doctor against real conditions: a port really taken, real disk, real cgroup files."""

from __future__ import annotations

from pathlib import Path

import pytest

from fakes import RecordingRunner, fail, ok
from sandbox.adapters.compose import find_compose
from sandbox.adapters.runtime import Engine, OciProbe, Runtime, probe_oci, run_probe_argv
from sandbox.config import Ports, Settings
from sandbox.core import doctor
from sandbox.errors import PrerequisiteError
from support import free_port

GIB = 1 << 30


def _runtime(name: str = "docker", mem: int = 16 * GIB, *, rootless: bool = False, cgroup: str = "2") -> Runtime:
    engine = Engine(f"unix:///{name}.sock", name == "podman", "1.0", mem, "", rootless, "linux", cgroup)
    return Runtime(name, engine, 1000, False)  # type: ignore[arg-type]


def test_a_port_in_use_fails_with_how_to_pick_another(taken_port: int) -> None:
    [check] = doctor.check_ports([("api", taken_port)])
    assert check.status == "fail" and f"port {taken_port} on 127.0.0.1 (api) is already in use" == check.what
    assert "SANDBOX_PORT_API" in check.fix
    free = free_port()
    assert doctor.check_ports([("api", free)])[0].status == "ok"


def test_a_port_our_own_stack_publishes_is_fine(taken_port: int) -> None:
    [check] = doctor.check_ports([("api", taken_port)], own={taken_port})
    assert check.status == "ok" and "published by this sandbox" in check.what


def test_memory_thresholds() -> None:
    assert doctor.check_memory(_runtime(mem=2 * GIB)).status == "fail"
    assert "at least 4 GB" in doctor.check_memory(_runtime(mem=2 * GIB)).fix
    assert doctor.check_memory(_runtime(mem=6 * GIB)).status == "warn"
    assert doctor.check_memory(_runtime(mem=16 * GIB)).status == "ok"


def test_disk_reports_the_real_free_space(tmp_path: Path) -> None:
    check = doctor.check_disk([tmp_path / "not" / "yet" / "created"])
    assert check.status in ("ok", "warn", "fail") and "GB free at" in check.what


def test_compose_missing_is_a_failure_with_an_install_hint() -> None:
    runner = RecordingRunner({r"version": fail("not found", 127)})
    command = find_compose(_runtime("docker"), runner=runner)
    check = doctor.check_compose(_runtime("docker"), command)
    assert command is None and check.status == "fail" and "compose" in check.fix.lower()


def test_compose_v1_alone_is_named_as_end_of_life_with_the_v2_install_hint() -> None:
    runner = RecordingRunner({r"^docker compose version": fail("docker: 'compose' is not a docker command.", 1), r"^docker-compose version": ok("1.29.2\n")})
    command = find_compose(_runtime("podman"), runner=runner)
    check = doctor.check_compose(_runtime("podman"), command)
    assert check.status == "fail"
    assert "`docker-compose` 1.29.2 is Compose v1" in check.what and "end of life" in check.what
    assert "https://docs.docker.com/compose/install/linux/" in check.fix


def test_missing_kind_is_only_a_warning_because_up_downloads_it(tmp_path: Path) -> None:
    check = doctor.check_tool("kind", None)
    assert check.status == "warn" and "downloads the pinned kind" in check.fix


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ('Error: default OCI runtime "crun" not found: invalid argument', "install the OCI runtime"),  # recorded here
        ("Error: crun: cgroups in hybrid mode not supported, drop all controllers from cgroupv2: OCI runtime error", 'runtime = "runc"'),
        ("Error: runc: setrlimit `RLIMIT_NOFILE`: operation not permitted: OCI permission denied", "default_ulimits"),
        ("something else entirely", "podman --log-level=debug"),
    ],
)
def test_oci_runtime_failures_get_a_specific_fix(error: str, expected: str) -> None:
    assert expected in doctor.oci_hint(error)


def test_podman_oci_check_runs_a_container_from_a_local_image() -> None:
    runner = RecordingRunner({
        r"image exists postgres": fail("", 1),
        r"image exists": ok(),
        r"podman run": fail('Error: default OCI runtime "crun" not found: invalid argument', 125),
    })
    check = doctor.check_podman_oci(probe_oci(["postgres:16", "rabbitmq:3"], runner=runner))
    assert check.status == "fail" and 'default OCI runtime "crun" not found' in check.what
    assert runner.argvs[-1] == run_probe_argv("rabbitmq:3")
    nothing_local = RecordingRunner({r"image exists": fail("", 1)})
    not_run = doctor.check_podman_oci(probe_oci(["postgres:16"], runner=nothing_local))
    assert not_run.status == "skip" and "not checked" in not_run.what  # a check not run is never ok
    assert doctor.check_podman_oci(OciProbe("rabbitmq:3")).status == "ok"


def test_rootless_podman_needs_cgroup_v2_and_delegation(tmp_path: Path) -> None:
    assert doctor.check_rootless_for_kind(_runtime("podman")) is None  # rootful: nothing to check
    v1 = doctor.check_rootless_for_kind(_runtime("podman", rootless=True, cgroup="1"), cgroup_root=tmp_path, uid=1000)
    assert v1 is not None and v1.status == "fail"
    missing = doctor.check_rootless_for_kind(_runtime("podman", rootless=True), cgroup_root=tmp_path, uid=1000)
    assert missing is not None and missing.status == "warn" and "cpu, memory, pids" in missing.what
    controllers = tmp_path / "user.slice/user-1000.slice/user@1000.service/cgroup.controllers"
    controllers.parent.mkdir(parents=True)
    controllers.write_text("cpuset cpu io memory pids\n")
    delegated = doctor.check_rootless_for_kind(_runtime("podman", rootless=True), cgroup_root=tmp_path, uid=1000)
    assert delegated is not None and delegated.status == "ok"


def test_diagnose_and_require_healthy(tmp_path: Path, taken_port: int) -> None:
    settings = Settings(project_dir=tmp_path, ports=Ports(api=taken_port, rabbitmq_ui=free_port(), azurite_blob=free_port()))
    runner = RecordingRunner({r"compose version": ok("2.29.7\n")})
    compose = find_compose(_runtime(), runner=runner)
    tools = {name: Path(f"/usr/bin/{name}") for name in ("kind", "kubectl")}
    report = doctor.diagnose(settings, runtime=_runtime(), compose=compose, tools=tools)
    names = [c.name for c in report.checks]
    assert names[:5] == ["runtime", "memory", "compose", "kind", "kubectl"]
    assert not report.ok and [c.name for c in report.failures] == [f"port {taken_port}"]
    with pytest.raises(PrerequisiteError, match=f"port {taken_port} on 127.0.0.1") as exc:
        doctor.require_healthy(report)
    assert "SANDBOX_PORT_API" in (exc.value.hint or "")
    stack_only = doctor.diagnose(settings, runtime=_runtime(), compose=compose, tools=tools, stack_only=True, own_ports={taken_port})
    assert stack_only.ok and "kind" not in [c.name for c in stack_only.checks]
    assert set(stack_only.to_json()) == {"ok", "runtime", "checks"}


def test_diagnose_without_an_engine(tmp_path: Path) -> None:
    nothing = PrerequisiteError("no container engine is reachable", hint="start Docker")
    report = doctor.diagnose(Settings(project_dir=tmp_path, runtime="docker"), stack_only=True, runtime=nothing)
    assert report.checks[0].status == "fail" and report.runtime is None
    assert report.checks[0].fix == "start Docker"
