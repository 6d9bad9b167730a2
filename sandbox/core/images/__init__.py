"""Task images: discover, tag by content, build what is missing, load into kind what a node lacks.

Every decision is made from facts that cannot be stale: the tag is the hash of the build
context (so an existing tag means nothing to build), and the nodes are asked which image IDs
they hold (so a recreated cluster is noticed). A second `sandbox up` with nothing changed
therefore does no image work: it hashes the contexts, inspects one tag per image and runs one
`crictl images` per worker node.

naming (pure) · records (the DAG folder's record) · history (what this sandbox built) · build ·
load · prune · status; this module is the images step of `sandbox up` and the package's API.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sandbox.adapters.crictl import node_has, parse_crictl_images
from sandbox.config import Settings
from sandbox.core.images.build import BuildResult, build, build_planned
from sandbox.core.images.history import read_built, remember_built
from sandbox.core.images.load import LoadResult, LoadTargets, load, load_planned, load_targets, needs_archive
from sandbox.core.images.naming import (
    CANONICAL_PREFIX,
    LABEL_HASH,
    LABEL_NAME,
    RESERVED_NAME,
    TAG_LENGTH,
    PlannedImage,
    TaskImage,
    build_args_for,
    discover,
    labels_for,
    plan,
    plan_all,
    plan_selected,
    select,
)
from sandbox.core.images.prune import PruneResult, prune, superseded_on_node
from sandbox.core.images.records import (
    RECORD_ENV,
    RECORD_FILE,
    dag_record_path,
    read_dag_record,
    touch_record_readers,
    write_dag_record,
)
from sandbox.core.images.status import ImageStatus, image_status
from sandbox.core.ports import ImageEngine, KindApi
from sandbox.models import NodeImage
from sandbox.progress import Reporter

__all__ = [
    "CANONICAL_PREFIX", "LABEL_HASH", "LABEL_NAME", "RECORD_ENV", "RECORD_FILE", "RESERVED_NAME", "TAG_LENGTH",
    "BuildResult", "ImageStatus", "ImagesResult", "LoadResult", "LoadTargets", "NodeImage", "PlannedImage",
    "PruneResult", "TaskImage", "build", "build_and_load", "build_args_for", "dag_record_path", "discover",
    "image_status", "labels_for", "load", "load_targets", "needs_archive", "node_has", "parse_crictl_images",
    "plan", "plan_selected", "prune", "read_built", "read_dag_record", "remember_built", "select",
    "superseded_on_node", "touch_record_readers", "write_dag_record",
]


@dataclass(frozen=True)
class ImagesResult:
    built: list[BuildResult] = field(default_factory=list)
    loaded: list[LoadResult] = field(default_factory=list)


def build_and_load(
    settings: Settings,
    reporter: Reporter,
    *,
    client: ImageEngine,
    kind: KindApi,
    names: Sequence[str] | None = None,
) -> ImagesResult:
    """The last step of `sandbox up`, and `watch`'s rebuild: nothing to do when tags exist and
    nodes hold their IDs. The DAG record is written once the nodes hold the images, so a run that
    reads it never names an image a node lacks."""
    if not discover(settings):
        reporter.info("no task images to build")
        return ImagesResult()
    planned, known = plan_all(settings, names, None)
    built = build_planned(settings, reporter, client, planned, known, record=False)
    loaded = load_planned(settings, reporter, client, kind, planned)
    write_dag_record(settings, built, known)
    return ImagesResult(built, loaded)
