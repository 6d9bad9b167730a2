"""`sandbox load`: put each selected image into the kind nodes that lack its ID, then check.

The nodes are asked which image IDs they hold (crictl), so a recreated cluster is noticed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sandbox.adapters.crictl import node_has, node_images
from sandbox.config import Settings
from sandbox.core.images.naming import PlannedImage, plan_all
from sandbox.core.kind_config import declared_nodes
from sandbox.core.ports import ImageEngine, KindApi
from sandbox.errors import ClusterError, CommandFailed, ImageBuildError
from sandbox.models import ImageInfo
from sandbox.progress import Reporter
from sandbox.state import StateDir
from sandbox.text import last_line

# `kind load docker-image` failures an archive gets around: Docker's containerd image store
# ("content digest ... not found"), and kind's `docker save` not seeing a podman-only image.
_NEEDS_ARCHIVE = re.compile(
    r"content digest \S+ not found|image: \"[^\"]+\" not present locally", re.IGNORECASE
)


@dataclass(frozen=True)
class LoadResult:
    name: str
    ref: str
    image_id: str
    loaded_into: tuple[str, ...]
    already_on: tuple[str, ...]
    via_archive: bool = False


def needs_archive(error: CommandFailed) -> bool:
    """Whether `kind load docker-image` failed in a way `docker save` + image-archive avoids."""
    return bool(_NEEDS_ARCHIVE.search(error.stderr))


@dataclass(frozen=True)
class LoadTargets:
    nodes: tuple[str, ...]  # where task pods can run: every worker (all nodes if there is none)
    virtual_node: str


def load_targets(settings: Settings, live: Sequence[str]) -> LoadTargets:
    """The running nodes worth loading into, and which one is the virtual node.

    The control plane is tainted NoSchedule, so no task pod runs there: loading it would only
    cost time. Roles and the virtual node come from kind-config.yaml, names from `kind get nodes`.
    """
    specs = {spec.name: spec for spec in declared_nodes(settings)}
    workers = tuple(n for n in live if n not in specs or specs[n].role != "control-plane")
    virtual = [n for n in live if n in specs and specs[n].is_virtual_node]
    if not virtual:
        expected = ", ".join(n for n, s in specs.items() if s.is_virtual_node) or "none declared"
        raise ClusterError(
            f"cluster {settings.cluster_name!r} has no virtual node (expected {expected}; running: "
            f"{', '.join(live)})",
            hint="the cluster predates kind-config.yaml's virtual node: `sandbox down` then `sandbox up`",
        )
    return LoadTargets(workers or tuple(live), virtual[0])


def cluster_nodes(settings: Settings, kind: KindApi) -> list[str]:
    nodes = kind.nodes(settings.cluster_name)
    if not nodes:
        raise ClusterError(
            f"no kind cluster named {settings.cluster_name!r} is running",
            hint="run `sandbox up` first",
        )
    return nodes


def _load_into(
    settings: Settings, client: ImageEngine, kind: KindApi, planned: PlannedImage, nodes: list[str],
    reporter: Reporter,
) -> bool:
    """`kind load docker-image`; where that cannot work (Docker's containerd image store, an image
    only podman holds), save the image through the engine API and `kind load image-archive`."""
    if settings.image_load == "archive":
        reporter.info(f"image_load = archive: loading {planned.ref} from an image archive")
    else:
        try:
            kind.load_docker_image(settings.cluster_name, planned.canonical_ref, nodes)
            return False
        except CommandFailed as exc:
            if not needs_archive(exc):
                raise
            reporter.info(f"kind load docker-image failed ({last_line(exc.stderr)}); "
                          f"loading {planned.ref} from an image archive instead")
    archive_dir = StateDir(settings.state_dir).ensure() / "images"  # private, like all state
    archive_dir.mkdir(exist_ok=True)
    archive = archive_dir / f"{planned.name}-{planned.tag}.tar"
    try:
        client.save(planned.canonical_ref, archive)
        kind.load_image_archive(settings.cluster_name, archive, nodes)
    finally:
        archive.unlink(missing_ok=True)
    return True


def load(
    settings: Settings,
    reporter: Reporter,
    client: ImageEngine,
    kind: KindApi,
    names: Sequence[str] | None = None,
    *,
    build_args: Mapping[str, str] | None = None,
) -> list[LoadResult]:
    """Load each selected image into the nodes lacking its ID, then check the nodes have it."""
    planned, _ = plan_all(settings, names, build_args)
    return load_planned(settings, reporter, client, kind, planned)


def load_planned(
    settings: Settings,
    reporter: Reporter,
    client: ImageEngine,
    kind: KindApi,
    planned: Sequence[PlannedImage],
) -> list[LoadResult]:
    local: dict[str, ImageInfo] = {}
    for item in planned:
        info = client.inspect(item.canonical_ref)
        if info is None:
            raise ImageBuildError(
                f"task image {item.name!r} is not built for its current context ({item.ref})",
                hint=f"run `sandbox build {item.name}`",
            )
        local[item.name] = info
    targets = load_targets(settings, cluster_nodes(settings, kind))
    nodes = list(targets.nodes)
    inventory = {node: node_images(client, node) for node in nodes}
    results: list[LoadResult] = []
    for item in planned:
        image_id = local[item.name].id
        lacking = [n for n in nodes if not node_has(inventory[n], image_id, item.canonical_ref)]
        present = tuple(n for n in nodes if n not in lacking)
        if not lacking:
            reporter.info(f"{item.ref} is already on every node")
            results.append(LoadResult(item.name, item.ref, image_id, (), present))
            continue
        with reporter.step(f"load {item.ref} into {', '.join(lacking)}"):
            via_archive = _load_into(settings, client, kind, item, lacking, reporter)
            missing = []
            for node in lacking:
                inventory[node] = node_images(client, node)
                if not node_has(inventory[node], image_id, item.canonical_ref):
                    missing.append(node)
        if missing:
            named = [f"{n} (the virtual node)" if n == targets.virtual_node else n for n in missing]
            raise ClusterError(
                f"{item.ref} ({image_id[:19]}) is not on node(s) {', '.join(named)} after kind load",
                hint="check the node's disk space (`docker exec NODE crictl images`), then run `sandbox load`",
            )
        results.append(LoadResult(item.name, item.ref, image_id, tuple(lacking), present, via_archive))
    return results
