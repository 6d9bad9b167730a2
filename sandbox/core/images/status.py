"""`sandbox images`: each task image's current tag, whether it is built, which nodes hold it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sandbox.adapters.crictl import node_has, node_images
from sandbox.config import Settings
from sandbox.core.images.naming import plan_selected
from sandbox.core.ports import ImageEngine, KindApi
from sandbox.errors import ClusterError, CommandFailed, PrerequisiteError
from sandbox.models import NodeImage


@dataclass(frozen=True)
class ImageStatus:
    name: str
    ref: str
    built: bool
    image_id: str | None
    size: int | None
    created: str | None
    nodes: tuple[str, ...] | None  # None: no cluster to ask

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def image_status(
    settings: Settings,
    client: ImageEngine,
    kind: KindApi | None,
    names: Sequence[str] | None = None,
    *,
    build_args: Mapping[str, str] | None = None,
) -> list[ImageStatus]:
    """Each task image's current tag, whether it is built, and which nodes hold it."""
    planned = plan_selected(settings, names, build_args)
    inventory: dict[str, list[NodeImage]] | None = None
    if kind is not None:
        try:
            nodes = kind.nodes(settings.cluster_name)
            inventory = {node: node_images(client, node) for node in nodes} if nodes else None
        except (CommandFailed, PrerequisiteError, ClusterError):
            inventory = None  # no kind, no cluster: the images are still worth listing
    rows: list[ImageStatus] = []
    for item in planned:
        info = client.inspect(item.canonical_ref)
        on_nodes: tuple[str, ...] | None = None
        if inventory is not None:
            on_nodes = tuple(
                n for n, imgs in inventory.items()
                if info is not None and node_has(imgs, info.id, item.canonical_ref)
            )
        rows.append(
            ImageStatus(
                item.name, item.ref, info is not None,
                info.id if info else None, info.size if info else None,
                info.created if info else None, on_nodes,
            )
        )
    return rows
