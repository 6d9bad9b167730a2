"""The stack commands as a user runs them: real processes, real engine detection, one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import REPO, require
from sandbox.adapters.runtime import ROOTFUL_PODMAN_SOCKET

PYTHON = sys.executable  # the interpreter running the tests, with this checkout on PYTHONPATH


def sandbox(project: Path, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
    return subprocess.run(
        [PYTHON, "-m", "sandbox", "-C", str(project), *args],
        capture_output=True, text=True, input=input, env={**clean, **(env or {})}, timeout=120,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "sandbox.toml").write_text('name = "clitest"\nruntime = "podman"\n')
    return tmp_path


def _one_error(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr
    assert result.stderr.count("error:") == 1, result.stderr
    return result.stderr[result.stderr.index("error:"):].splitlines()[0]


def test_status_json_when_nothing_is_up(project: Path) -> None:
    result = sandbox(project, "status", "--json")
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["healthy"] is False and data["mode"] is None
    assert "the sandbox is not up (run `sandbox up`)" in data["problems"]
    assert set(data) == {
        "healthy", "mode", "runtime", "cluster", "services", "missing_services", "api", "login", "problems",
        "concurrency", "virtual_node_quota", "project", "files", "dag_import_errors",
    }
    assert data["dag_import_errors"] == []
    assert data["project"] == str(project)
    assert data["files"]["kind config"].endswith("(packaged default)")


def test_status_shows_the_caps_and_the_quota_it_configures(project: Path) -> None:
    (project / "sandbox.toml").write_text(
        'name = "clitest"\nruntime = "podman"\n[concurrency]\nmax_active_runs_per_dag = 3\n'
        "[virtual_node_quota]\npods = 4\n"
    )
    data = json.loads(sandbox(project, "status", "--json").stdout)
    assert data["concurrency"] == {"parallelism": 32, "max_active_tasks_per_dag": 16, "max_active_runs_per_dag": 3}
    assert data["virtual_node_quota"] == {"pods": 4, "cpu": 100.0, "memory_gib": None}
    human = sandbox(project, "status").stdout
    assert "max_active_runs_per_dag 3" in human


def test_up_stops_at_doctor_on_a_taken_port(project: Path, taken_port: int) -> None:
    require(Path(ROOTFUL_PODMAN_SOCKET).is_socket(), "podman's API socket is not running")
    result = sandbox(project, "up", "--stack-only", env={"SANDBOX_PORT_API": str(taken_port)})
    assert result.returncode == 1
    assert f"port {taken_port} on 127.0.0.1 (api) is already in use" in _one_error(result)
    assert "SANDBOX_PORT_API" in result.stderr
    assert not (project / ".sandbox" / "compose.env").exists()  # nothing started


def test_doctor_json(project: Path) -> None:
    require(Path(ROOTFUL_PODMAN_SOCKET).is_socket(), "podman's API socket is not running")
    result = sandbox(project, "doctor", "--stack-only", "--json")
    data = json.loads(result.stdout)
    assert data["runtime"] == "podman"
    assert {c["name"] for c in data["checks"]} >= {"runtime", "memory", "compose", "disk"}
    assert result.returncode == (0 if data["ok"] else 1)


def test_purge_asks_first_and_no_keeps_everything(project: Path) -> None:
    state = project / ".sandbox"
    state.mkdir()
    (state / "secrets.json").write_text("{}")
    result = sandbox(project, "down", "--purge", input="n\n")
    assert result.returncode == 2 and "nothing removed" in _one_error(result)
    assert (state / "secrets.json").exists()


def test_kubeconfig_without_a_cluster_is_one_line_with_a_hint(project: Path) -> None:
    result = sandbox(project, "kubeconfig")
    assert result.returncode == 1 and "no admin kubeconfig" in _one_error(result)
    assert "hint: run `sandbox up`" in result.stderr


def test_logs_when_not_up(project: Path) -> None:
    result = sandbox(project, "logs", "airflow-worker", "--tail", "5")
    assert result.returncode == 1 and "not up" in _one_error(result)


@pytest.mark.parametrize("command", [["build"], ["load"], ["images"], ["prune"], ["prune", "--dry-run"]])
def test_image_commands_without_an_engine_are_one_line(tmp_path: Path, command: list[str]) -> None:
    shutil.copytree(REPO / "sample_dags", tmp_path / "sample_dags", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "sandbox.toml").write_text('runtime = "docker"\n')
    unreachable = {"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    result = sandbox(tmp_path, *command, env=unreachable)
    assert result.returncode == 1 and "the Docker daemon is not reachable" in _one_error(result)
    # bad input is a usage error before any engine is asked
    unknown = sandbox(tmp_path, *command, "nope", env=unreachable)
    assert unknown.returncode == 2 and "unknown task image(s): nope" in _one_error(unknown)
    malformed = sandbox(tmp_path, *command, "--build-arg", "FOO", env=unreachable)
    assert malformed.returncode == 2 and "is not KEY=VALUE" in _one_error(malformed)


def test_down_where_nothing_was_ever_up_needs_no_engine_and_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "sandbox.toml").write_text('runtime = "docker"\n')
    result = sandbox(tmp_path, "down", env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert result.returncode == 0 and "nothing was running" in result.stdout
    assert not (tmp_path / ".sandbox").exists()


def test_purge_with_no_answer_removes_nothing(project: Path) -> None:
    state = project / ".sandbox"
    state.mkdir()
    (state / "secrets.json").write_text("{}")
    result = sandbox(project, "down", "--purge", input="")  # stdin closed: CI, a pipe
    assert result.returncode == 2 and "got no answer" in _one_error(result) and "--yes" in result.stderr
    assert (state / "secrets.json").exists()


def test_a_missing_project_folder_and_an_unusable_state_dir_are_one_line(tmp_path: Path) -> None:
    missing = sandbox(tmp_path / "typo", "status")
    assert missing.returncode == 2 and "does not exist" in _one_error(missing)
    assert not (tmp_path / "typo").exists()
    (tmp_path / "sandbox.toml").write_text('runtime = "docker"\n')
    (tmp_path / ".sandbox").write_text("a file where the state folder belongs\n")
    blocked = sandbox(tmp_path, "up", env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert blocked.returncode == 1 and ".sandbox" in _one_error(blocked)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run-dag"], "Missing argument 'dag_id'."),
        (["status", "--nope"], "No such option: --nope"),
        (["nosuch"], "No such command 'nosuch'."),
        (["logs", "--tail", "abc"], "Invalid value for '--tail'"),
        (["backfill", "d", "--start", "2021-12-01", "--end", "2021-12-02", "--max-active-runs", "0"],
         "Invalid value for '--max-active-runs'"),
    ],
)
def test_usage_errors_read_like_every_other_error(project: Path, args: list[str], message: str) -> None:
    result = sandbox(project, *args)
    assert result.returncode == 2 and message in _one_error(result)
    assert "--help`" in result.stderr and "╭" not in result.stderr  # no boxed panel


def test_bare_sandbox_prints_help() -> None:
    result = subprocess.run([str(Path(PYTHON).parent / "sandbox")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "Usage: sandbox" in result.stdout and "run-dag" in result.stdout


def test_ctrl_c_at_the_purge_prompt_is_an_interrupt_and_removes_nothing(project: Path) -> None:
    """On a real terminal (a pty): ^C at the question exits 130, not "no answer" (2)."""
    import pty
    import select

    state = project / ".sandbox"
    state.mkdir()
    (state / "secrets.json").write_text("{}")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI on the pty
        os.execve(PYTHON,
                  [PYTHON, "-m", "sandbox", "-C", str(project), "down", "--purge"], clean)
    output = b""
    try:
        while b"[y/N]" not in output:
            ready, _, _ = select.select([fd], [], [], 30)
            assert ready, f"no prompt within 30 s: {output!r}"
            output += os.read(fd, 1024)
        os.write(fd, b"\x03")  # the terminal turns ^C into SIGINT for the CLI
        while True:
            ready, _, _ = select.select([fd], [], [], 30)
            if not ready:
                break
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # the child closed the pty
                break
            if not chunk:
                break
            output += chunk
    finally:
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 130, output
    assert b"interrupted; nothing was lost" in output and b"Traceback" not in output
    assert (state / "secrets.json").exists()
