"""ensure_tool against a real HTTP server on loopback laid out like the kind release page: the
good file is installed, a bad checksum is refused and leaves nothing, a dead server is one clear
DownloadError."""

from __future__ import annotations

import functools
import hashlib
import os
import socket
import stat
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sandbox.config import load_settings
from sandbox.core.kind_config import host_arch
from sandbox.core.tools import TOOLS, ensure_tool, host_os
from sandbox.errors import DownloadError
from sandbox.state import StateDir

KIND = TOOLS["kind"]
SCRIPT = f"#!/bin/sh\necho 'kind v{KIND.version} go1.25.3 linux/amd64'\n".encode()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def release(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A directory served on a free loopback port: <root>/v<version>/kind-<os>-<arch>(.sha256sum)."""
    root = tmp_path / "www"
    folder = root / f"v{KIND.version}"
    folder.mkdir(parents=True)
    binary = folder / f"kind-{host_os()}-{host_arch()}"
    binary.write_bytes(SCRIPT)
    Path(f"{binary}.sha256sum").write_text(f"{hashlib.sha256(SCRIPT).hexdigest()}  {binary.name}\n")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", binary
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no kind on PATH, whatever the machine has
    return load_settings(tmp_path / "project", environ={})


def test_good_file_is_verified_installed_and_runs(release, settings) -> None:
    base_url, _ = release
    messages: list[str] = []
    path = ensure_tool("kind", settings, base_url=base_url, reporter_info=messages.append)
    assert path == StateDir(settings.state_dir).tools_dir / "kind"
    assert path.read_bytes() == SCRIPT
    assert stat.S_IMODE(path.stat().st_mode) & 0o111
    assert f"v{KIND.version}" in messages[0]
    assert [p.name for p in path.parent.iterdir()] == ["kind"]  # no partial files left
    # Found next time without downloading (the server is not asked again).
    assert ensure_tool("kind", settings, base_url="http://127.0.0.1:9") == path


def test_bad_checksum_is_refused_and_nothing_is_left(release, settings) -> None:
    base_url, binary = release
    Path(f"{binary}.sha256sum").write_text(f"{'0' * 64}  {binary.name}\n")
    with pytest.raises(DownloadError, match="checksum mismatch") as info:
        ensure_tool("kind", settings, base_url=base_url)
    assert "nothing was installed" in (info.value.hint or "")
    tools_dir = StateDir(settings.state_dir).tools_dir
    assert not tools_dir.exists() or list(tools_dir.iterdir()) == []


def test_missing_checksum_file_is_refused(release, settings) -> None:
    base_url, binary = release
    os.remove(f"{binary}.sha256sum")
    with pytest.raises(DownloadError, match="HTTP 404"):
        ensure_tool("kind", settings, base_url=base_url)
    assert not (StateDir(settings.state_dir).tools_dir / "kind").exists()


def test_server_down_is_a_clear_error(settings) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed on exit: nothing listens there
    with pytest.raises(DownloadError, match=f"cannot download http://127.0.0.1:{port}/") as info:
        ensure_tool("kind", settings, base_url=f"http://127.0.0.1:{port}")
    assert "internet connection" in (info.value.hint or "")
