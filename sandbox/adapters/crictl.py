"""crictl inside a kind node: which images the node's containerd holds, and removing some.

Runs through the engine's `exec` into the node container (no crictl on the host). `crictl images
-o json` prints protojson of CRI's ListImagesResponse (size is a string).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Protocol

from sandbox.errors import ClusterError
from sandbox.models import NodeImage

CRICTL_IMAGES = ("crictl", "images", "-o", "json")


class Exec(Protocol):
    def exec(self, container: str, argv: Sequence[str]) -> str: ...


def parse_crictl_images(text: str) -> list[NodeImage]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ClusterError(f"unreadable `crictl images -o json` output: {exc}") from exc
    return [
        NodeImage(
            id=item["id"],
            repo_tags=tuple(item.get("repoTags") or ()),
            repo_digests=tuple(item.get("repoDigests") or ()),
            size=int(item.get("size") or 0),
        )
        for item in data.get("images") or []
    ]


def node_images(engine: Exec, node: str) -> list[NodeImage]:
    return parse_crictl_images(engine.exec(node, CRICTL_IMAGES))


def remove_node_images(engine: Exec, node: str, image_ids: Iterable[str]) -> None:
    engine.exec(node, ["crictl", "rmi", *image_ids])


def node_has(images: Sequence[NodeImage], image_id: str, canonical_ref: str) -> bool:
    """The node holds this image ID under this name (what kind checks with `crictl inspecti`).

    Docker's classic store and podman report the config digest as the image ID, which is
    crictl's `id`. Docker's containerd store reports the manifest digest instead: that shows up
    among the node's repoDigests.
    """
    for image in images:
        if canonical_ref not in image.repo_tags:
            continue
        digests = {d.rpartition("@")[2] for d in image.repo_digests}
        if image.id == image_id or image_id in digests:
            return True
    return False
