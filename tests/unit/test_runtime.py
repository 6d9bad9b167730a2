"""sandbox.adapters.runtime: which engine answers, probed over real sockets.

Engines are served on temp unix sockets by a small HTTP server answering the recorded
/version and /info documents, and, where this machine runs it, by podman's real socket.
"""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from fakes import RecordingRunner, ok
from sandbox.adapters.runtime import (
    ROOTFUL_PODMAN_SOCKET,
    Engine,
    Runtime,
    detect_runtime,
    driving_healthchecks,
    parse_engine,
    podman_candidates,
    probe,
)
from sandbox.config import Settings
from sandbox.errors import PrerequisiteError
from sandbox.waiting import wait_until

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "compose"

def _doc(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())

@contextmanager
def engine_socket(path: Path, version: dict, info: dict) -> Iterator[str]:
    """A real unix-socket HTTP server answering GET /version and /info like an engine."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = {"/version": version, "/info": info}.get(self.path.split("?")[0])
            data = json.dumps(body).encode()
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def address_string(self) -> str:
            return "unix"

        def log_message(self, *args: object) -> None:
            pass

    server = socketserver.ThreadingUnixStreamServer(str(path), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"unix://{path}"
    finally:
        server.shutdown()
        server.server_close()

def test_parse_recorded_engines() -> None:
    podman = parse_engine("unix:///run/podman/podman.sock", _doc("podman_version.json"), _doc("podman_info.json"))
    assert podman.is_podman and podman.version == "4.3.1" and not podman.rootless
    assert podman.mem_total == 25276502016 and podman.cgroup_version == "1"
    docker = parse_engine("unix:///var/run/docker.sock", _doc("docker_version.json"), _doc("docker_info.json"))
    assert not docker.is_podman and docker.version == "27.3.1" and docker.root_dir == "/var/lib/docker"
    rootless = parse_engine("x", _doc("docker_version.json"), {**_doc("docker_info.json"), "SecurityOptions": ["name=rootless"]})
    assert rootless.rootless

def test_probe_answers_none_when_nothing_listens(tmp_path: Path) -> None:
    assert probe(f"unix://{tmp_path}/absent.sock") is None
    assert probe("ssh://user@host") is None

def _settings(tmp_path: Path, runtime: str = "auto") -> Settings:
    return Settings(project_dir=tmp_path, runtime=runtime)  # type: ignore[arg-type]

def test_auto_prefers_docker_when_its_daemon_answers(tmp_path: Path) -> None:
    with engine_socket(tmp_path / "docker.sock", _doc("docker_version.json"), _doc("docker_info.json")) as docker_url, \
            engine_socket(tmp_path / "podman.sock", _doc("podman_version.json"), _doc("podman_info.json")) as podman_url:
        environ = {"DOCKER_HOST": docker_url, "CONTAINER_HOST": podman_url}
        prober = _only(docker_url, podman_url)
        runtime = detect_runtime(_settings(tmp_path), environ=environ, systemd=True, prober=prober)
        assert (runtime.name, runtime.base_url, runtime.kind_provider) == ("docker", docker_url, None)
        assert runtime.env == {"DOCKER_HOST": docker_url} and not runtime.drives_healthchecks
        forced = detect_runtime(_settings(tmp_path, "podman"), environ=environ, systemd=True, prober=prober)
        assert (forced.name, forced.base_url, forced.kind_provider) == ("podman", podman_url, "podman")

def test_auto_falls_back_to_podman_and_docker_host_pointing_at_podman_is_podman(tmp_path: Path) -> None:
    with engine_socket(tmp_path / "podman.sock", _doc("podman_version.json"), _doc("podman_info.json")) as podman_url:
        environ = {"DOCKER_HOST": podman_url, "HOME": str(tmp_path)}
        runtime = detect_runtime(_settings(tmp_path), environ=environ, systemd=False, prober=_only(podman_url))
        assert runtime.name == "podman" and runtime.base_url == podman_url
        assert runtime.drives_healthchecks  # no systemd: nothing else runs podman's healthchecks
        with pytest.raises(PrerequisiteError, match="Docker daemon is not reachable") as exc:
            detect_runtime(_settings(tmp_path, "docker"), environ=environ, prober=_only(podman_url))
        assert "podman" in (exc.value.hint or "")

def test_rootless_podman_runs_airflow_as_container_root(tmp_path: Path) -> None:
    info = {**_doc("podman_info.json"), "Rootless": True}
    with engine_socket(tmp_path / "podman.sock", _doc("podman_version.json"), info) as url:
        runtime = detect_runtime(_settings(tmp_path, "podman"), environ={"CONTAINER_HOST": url}, prober=_only(url), systemd=True)
    assert runtime.engine.rootless and runtime.airflow_uid == 0

def test_nothing_answering_is_one_clear_error(tmp_path: Path) -> None:
    environ = {"DOCKER_HOST": f"unix://{tmp_path}/none.sock", "XDG_RUNTIME_DIR": str(tmp_path)}
    with pytest.raises(PrerequisiteError, match="podman's API socket is not answering") as exc:
        detect_runtime(_settings(tmp_path, "podman"), environ=environ, prober=_only(), systemd=True)
    assert "systemctl --user enable --now podman.socket" in (exc.value.hint or "")
    with pytest.raises(PrerequisiteError, match="no container engine is reachable") as exc:
        detect_runtime(_settings(tmp_path), environ=environ, prober=_only(), systemd=False)
    assert "podman system service" in (exc.value.hint or "")

def _only(*urls: str):
    """probe(), but only for the given addresses (keeps the host's real sockets out of a test)."""
    return lambda url: probe(url) if url in urls else None

def test_podman_socket_candidates(tmp_path: Path) -> None:
    rootless = f"unix://{tmp_path}/podman/podman.sock"
    found = podman_candidates({"XDG_RUNTIME_DIR": str(tmp_path)})
    assert set(found) == {rootless, f"unix://{ROOTFUL_PODMAN_SOCKET}"}
    assert podman_candidates({})[-1] == f"unix://{ROOTFUL_PODMAN_SOCKET}"

PODMAN = Runtime("podman", Engine("unix:///run/podman/podman.sock", True, "4.3.1", 1 << 34, "", False, ""), 0, True)

def _health_runs(runner: RecordingRunner) -> list[str]:
    return [c.argv[-1] for c in runner.calls if c.argv[:3] == ["podman", "healthcheck", "run"]]

def test_healthcheck_driver_runs_podman_healthcheck_for_each_container() -> None:
    runner = RecordingRunner()
    with driving_healthchecks(PODMAN, lambda: ["demo_a_1", "demo_b_1"], interval=0.02, spacing=0.05, runner=runner):
        wait_until(lambda: len(_health_runs(runner)) >= 4, what="two rounds of healthchecks", timeout=10, interval=0.02)
    assert set(_health_runs(runner)) == {"demo_a_1", "demo_b_1"}
    assert {tuple(c.argv[:3]) for c in runner.calls} == {("podman", "healthcheck", "run"), ("podman", "inspect", "--format")}
    assert not [t for t in threading.enumerate() if t.name == "sandbox-healthchecks"]  # stopped with the block

def test_healthcheck_driver_paces_each_container_at_its_declared_interval() -> None:
    """As Docker would: a 15 s check is not run every few seconds, or `retries` would shrink."""
    runner = RecordingRunner({
        r"inspect .* fast_1": ok('{"Test":["CMD","true"],"Interval":20000000,"Retries":3}'),
        r"inspect .* slow_1": ok('{"Test":["CMD","true"],"Interval":15000000000,"Retries":3}'),
    })
    with driving_healthchecks(PODMAN, lambda: ["fast_1", "slow_1"], interval=0.01, spacing=0.01, runner=runner):
        wait_until(lambda: _health_runs(runner).count("fast_1") >= 5, what="five fast checks", timeout=10, interval=0.01)
    assert _health_runs(runner).count("slow_1") == 1

def test_healthcheck_driver_is_a_no_op_where_the_engine_runs_them() -> None:
    runner = RecordingRunner()
    systemd_podman = Runtime("podman", PODMAN.engine, 0, drives_healthchecks=False)
    with driving_healthchecks(systemd_podman, lambda: ["x"], interval=0.01, runner=runner):
        pass
    assert runner.calls == []
