"""Value types more than one layer reads: parsed by an adapter, reasoned about by core, shown by the CLI.

They hold data and the rules about that data only; nothing here talks to an external system.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

# Services of the compose file that run once and exit 0 (the database migration), not for good.
ONE_SHOT_SERVICES = ("airflow-init",)
Verdict = Literal["ok", "pending", "failed"]


@dataclass(frozen=True)
class Taint:
    key: str
    value: str
    effect: str

    def __str__(self) -> str:
        return f"{self.key}={self.value}:{self.effect}" if self.value else f"{self.key}:{self.effect}"


@dataclass(frozen=True)
class Node:
    """A Kubernetes node as the API reports it."""

    name: str
    labels: Mapping[str, str]
    taints: tuple[Taint, ...]
    ready: bool
    unschedulable: bool = False
    kubelet_version: str = ""
    pods_capacity: int | None = None  # status.capacity.pods: kubelet's --max-pods


@dataclass(frozen=True)
class ImageInfo:
    """An image in the container engine's store."""

    id: str
    tags: tuple[str, ...]
    size: int
    created: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeImage:
    """One image a kind node holds (an entry of `crictl images -o json`)."""

    id: str
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    size: int


@dataclass(frozen=True)
class ServiceState:
    """One container of the compose project as `ps` reports it."""

    service: str
    container: str
    state: str  # created | running | restarting | exited | paused | dead
    health: str  # "" (no healthcheck) | starting | healthy | unhealthy
    exit_code: int
    published_ports: tuple[int, ...] = ()

    @property
    def has_healthcheck(self) -> bool:
        return self.health != ""

    @property
    def one_shot(self) -> bool:
        return self.service in ONE_SHOT_SERVICES

    @property
    def ok(self) -> bool:
        """Long-running: running and (if it has one) passing its healthcheck."""
        return self.state == "running" and self.health in ("", "healthy")

    @property
    def completed(self) -> bool:
        """One-shot: exited with code 0."""
        return self.state == "exited" and self.exit_code == 0

    @property
    def verdict(self) -> Verdict:
        """The one rule for "is this service healthy": a one-shot service must have exited 0, a
        long-running one must run and pass its healthcheck; failed is what waiting cannot fix."""
        if self.one_shot:
            if self.completed:
                return "ok"
            return "failed" if self.state in ("exited", "dead") else "pending"
        if self.health == "unhealthy" or self.state in ("exited", "dead"):
            return "failed"
        return "ok" if self.ok else "pending"

    @property
    def condition(self) -> str:
        """What is wrong or awaited, for messages: `exited with code 1`, `is starting`."""
        if self.state == "exited":
            return f"exited with code {self.exit_code}"
        return f"is {self.health or self.state}"

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "container": self.container,
            "state": self.state,
            "health": self.health,
            "exit_code": self.exit_code,
            "published_ports": list(self.published_ports),
        }
