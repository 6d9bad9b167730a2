"""A real Azurite (Azure's Blob Storage emulator, the npm package in tests/node) for tests.

`running_azurite()` starts a fresh in-memory instance on a free loopback port and yields its
connection string (Azurite's documented development account); `snapshot` and `upload` read and
write blobs as `<container>/<path>`.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from support import REPO, require, require_tool

from sandbox.core import blob
from sandbox.waiting import wait_until

AZURITE = REPO / "tests" / "node" / "node_modules" / ".bin" / "azurite-blob"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def running_azurite() -> Iterator[str]:
    """A fresh in-memory Azurite on a free loopback port; yields its connection string."""
    require_tool("node")
    require(AZURITE.exists(), "Azurite is not installed: run `npm ci` in tests/node")
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="azurite-") as workspace:
        proc = subprocess.Popen(
            [
                str(AZURITE),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(port),
                "--inMemoryPersistence",
                "--disableTelemetry",
                "--skipApiVersionCheck",
                "--loose",
                "--silent",
            ],
            cwd=workspace,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_until(
                lambda: proc.poll() is None and _accepts(port) or _exited(proc),
                what=f"Azurite on 127.0.0.1:{port}",
                timeout=30,
                interval=0.1,
            )
            yield blob.connection_string(blob.blob_endpoint("127.0.0.1", port))
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def _exited(proc: subprocess.Popen[bytes]) -> bool:
    if proc.poll() is not None:
        stderr = proc.stderr.read().decode() if proc.stderr else ""
        raise RuntimeError(f"Azurite exited with {proc.returncode}: {stderr[-500:]}")
    return False


def snapshot(connection: str, prefix: str) -> dict[str, bytes]:
    """Every blob under `<container>/<prefix>` with its content."""
    from azure.storage.blob import BlobServiceClient

    container, _, name_prefix = prefix.partition("/")
    client = BlobServiceClient.from_connection_string(connection).get_container_client(container)
    return {
        b.name: client.download_blob(b.name).readall()
        for b in client.list_blobs(name_starts_with=name_prefix)
    }


def upload(connection: str, path: str, data: bytes) -> None:
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import BlobServiceClient

    container, _, name = path.partition("/")
    client = BlobServiceClient.from_connection_string(connection).get_container_client(container)
    try:
        client.create_container()
    except ResourceExistsError:
        pass
    client.upload_blob(name, data, overwrite=True)
