"""What the adapters find on a machine with podman and Compose v2 (this one): the real engine
socket, the Compose v2 binary .ci/run installs, and podman starting a container from a local image."""

from __future__ import annotations

from pathlib import Path

from sandbox.adapters.compose import find_compose
from sandbox.adapters.runtime import ROOTFUL_PODMAN_SOCKET, Engine, Runtime, detect_runtime, probe_oci
from sandbox.config import Settings
from sandbox.core import doctor
from support import require, require_compose_v2, require_tool

PODMAN = Runtime("podman", Engine("unix:///run/podman/podman.sock", True, "4.3.1", 1 << 34, "", False, ""), 0, True)


def test_detects_the_real_podman_socket_here(tmp_path: Path) -> None:
    require(Path(ROOTFUL_PODMAN_SOCKET).is_socket(), f"podman's API socket {ROOTFUL_PODMAN_SOCKET} is not running")
    runtime = detect_runtime(Settings(project_dir=tmp_path, runtime="podman"), environ={}, systemd=False)
    assert runtime.name == "podman" and runtime.engine.is_podman
    assert runtime.base_url == f"unix://{ROOTFUL_PODMAN_SOCKET}" and runtime.engine.mem_total > 0


def test_find_compose_on_this_machine_against_podman() -> None:
    """Real: the Compose v2 binary .ci/run installs (tests/compose_setup.sh) runs against podman here."""
    prefix = require_compose_v2()
    command = find_compose(PODMAN)
    assert command is not None and command.argv == tuple(prefix) and command.major == 2


def test_podman_oci_check_for_real_here() -> None:
    """Real podman: the base image the container tier builds starts (ok), whatever is present."""
    require_tool("podman")
    check = doctor.check_podman_oci(probe_oci(["localhost/debian:bookworm", "localhost/sandbox-python:3.11"]))
    assert check.status == "ok", check
