"""`sandbox prune`: remove the task image tags the current sources no longer produce."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sandbox.adapters.crictl import node_images, remove_node_images
from sandbox.config import Settings
from sandbox.core.images.airflow import planned_ref
from sandbox.core.images.history import history_lock, read_built, write_built
from sandbox.core.images.naming import CANONICAL_PREFIX, RESERVED_NAME, TASK_TAG, plan_selected
from sandbox.core.images.records import read_dag_record
from sandbox.core.ports import ImageEngine, KindApi
from sandbox.errors import ClusterError, CommandFailed, ImageInUse, PrerequisiteError
from sandbox.models import NodeImage
from sandbox.progress import Reporter


@dataclass(frozen=True)
class PruneResult:
    """Superseded task image tags removed (or, with dry_run, that would be)."""

    kept: tuple[str, ...]  # the current refs, never removed
    engine: tuple[str, ...]
    nodes: Mapping[str, tuple[str, ...]] | None  # None: no cluster to prune
    dry_run: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def superseded_on_node(inventory: Sequence[NodeImage], current: Mapping[str, Collection[str]]) -> list[NodeImage]:
    """Node images tagged only with content tags of known task images, none of them current.

    `current` maps image name to the canonical refs that stay. An image carrying any other tag (a
    user's, a system image) is never a candidate, so only what `sandbox load` put there can go.
    """
    keep = {ref for refs in current.values() for ref in refs}
    stale: list[NodeImage] = []
    for image in inventory:
        matches = [TASK_TAG.match(tag) for tag in image.repo_tags]
        if not image.repo_tags or not all(matches):
            continue
        names = {m.group("name") for m in matches if m}
        if names <= current.keys() and not set(image.repo_tags) & keep:
            stale.append(image)
    return stale


def _prune_engine(
    settings: Settings, reporter: Reporter, client: ImageEngine, keep: Mapping[str, Collection[str]], dry_run: bool
) -> list[str]:
    """Remove from the engine every recorded ref of the named images not in `keep`; forget them."""
    removed: list[str] = []
    with history_lock(settings):
        built = read_built(settings)
        for name in keep:
            remaining: list[str] = []
            for ref in built.get(name, []):
                if CANONICAL_PREFIX + ref in keep[name]:
                    remaining.append(ref)
                elif client.inspect(CANONICAL_PREFIX + ref) is not None:
                    if dry_run:
                        remaining.append(ref)
                    else:
                        try:
                            client.remove(CANONICAL_PREFIX + ref)
                        except ImageInUse as exc:
                            reporter.info(f"kept {ref}: {exc}")
                            remaining.append(ref)
                            continue
                    removed.append(ref)
            if name in built:
                built[name] = remaining
        if not dry_run:
            write_built(settings, built)
    return removed


def prune(
    settings: Settings,
    reporter: Reporter,
    client: ImageEngine,
    kind: KindApi | None,
    names: Sequence[str] | None = None,
    *,
    build_args: Mapping[str, str] | None = None,
    dry_run: bool = False,
) -> PruneResult:
    """Remove the task image tags the current sources no longer produce, locally and on nodes,
    and (without names) the extended Airflow images the current airflow_requirements do not.

    Locally only refs this sandbox recorded building go (another project's images share the
    engine); on the nodes, which belong to this sandbox's cluster, any superseded content tag of
    a known task image goes. The current tags always stay.
    """
    planned = plan_selected(settings, names, build_args)
    # What the DAGs use (the record) stays too: it may differ from what the sources give now
    # (edited since the build, or built with other --build-arg values).
    recorded = {
        name: CANONICAL_PREFIX + entry["image"] for name, entry in read_dag_record(settings).items() if entry.get("image")
    }
    current = {p.name: {p.canonical_ref, recorded.get(p.name, p.canonical_ref)} for p in planned}
    engine_current = dict(current)
    if not names:  # the extended Airflow image: none is current without airflow_requirements
        engine_current[RESERVED_NAME] = {planned_ref(settings)} if settings.airflow_requirements else set()
    engine_removed = _prune_engine(settings, reporter, client, engine_current, dry_run)
    nodes_removed: dict[str, tuple[str, ...]] | None = None
    nodes: list[str] = []
    if kind is not None:
        try:
            nodes = kind.nodes(settings.cluster_name)
        except (CommandFailed, PrerequisiteError, ClusterError):
            nodes = []
    if nodes:
        nodes_removed = {}
        for node in nodes:
            stale = superseded_on_node(node_images(client, node), current)
            if stale and not dry_run:
                with reporter.step(f"remove {len(stale)} superseded image(s) from {node}"):
                    remove_node_images(client, node, (image.id for image in stale))
            nodes_removed[node] = tuple(
                sorted(tag.removeprefix(CANONICAL_PREFIX) for image in stale for tag in image.repo_tags)
            )
    else:
        reporter.info(f"no running cluster {settings.cluster_name!r}: only local images pruned")
    kept = tuple(sorted(ref.removeprefix(CANONICAL_PREFIX) for refs in engine_current.values() for ref in refs))
    return PruneResult(kept, tuple(engine_removed), nodes_removed, dry_run)
