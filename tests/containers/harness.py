"""Helpers of the container tier: free ports, unique names, and containers, networks and volumes
that are always removed, whatever the test did.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def free_port() -> int:
    """A port nothing listens on now (the kernel picks it; we release it for the container)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@contextmanager
def running(client: Any, image: str, **kwargs: Any) -> Iterator[Any]:
    """A detached container, force-removed (with its anonymous volumes) on the way out."""
    container = client.containers.run(image, detach=True, **kwargs)
    try:
        yield container
    finally:
        container.remove(force=True, v=True)


def run_once(client: Any, image: str, command: Any, *, timeout: float = 300, **kwargs: Any) -> tuple[int, str]:
    """Run a command to completion in a fresh container; (exit code, stdout+stderr)."""
    with running(client, image, command=command, **kwargs) as container:
        status = container.wait(timeout=timeout)
        output = container.logs(stdout=True, stderr=True).decode(errors="replace")
        return int(status["StatusCode"]), output


@contextmanager
def network(client: Any) -> Iterator[str]:
    """A private network where containers find each other by name."""
    net = client.networks.create(unique("standin-net"))
    try:
        yield net.name
    finally:
        net.remove()


@contextmanager
def volume(client: Any) -> Iterator[str]:
    vol = client.volumes.create(unique("standin-vol"))
    try:
        yield vol.name
    finally:
        vol.remove(force=True)
