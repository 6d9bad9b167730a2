"""Task images: discover, tag by content, build what is missing, load into kind what a node lacks.

Every decision is made from facts that cannot be stale: the tag is the hash of the build
context (so an existing tag means nothing to build), and the nodes are asked which image IDs
they hold (so a recreated cluster is noticed). A second `sandbox up` with nothing changed
therefore does no image work: it hashes the contexts, inspects one tag per image and runs one
`crictl images` per worker node.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from sandbox.adapters.docker_images import BuildFailed, DockerImages, ImageInfo
from sandbox.adapters.kind import KindCli
from sandbox.config import Settings
from sandbox.core.build_context import context_entries, context_hash, write_context_tar
from sandbox.core.kind_config import declared_nodes
from sandbox.errors import (
    ClusterError,
    CommandFailed,
    ConfigError,
    ImageBuildError,
    ImageInUse,
    PrerequisiteError,
    UsageError,
)
from sandbox.progress import Reporter
from sandbox.state import StateDir, write_private

LABEL_NAME = "sandbox.task-image"
LABEL_HASH = "sandbox.context-hash"
RECORD_FILE = ".sandbox-images.json"  # in the DAG folder: read by sandbox_tasks.task_image()
# The DAG-side helper (sample_dags/sandbox_tasks/images.py) reads the record from this variable
# when set; `sandbox lint` uses it to resolve tags before anything is built.
RECORD_ENV = "SANDBOX_TASK_IMAGE_RECORD"
RECORD_VERSION = 1
TAG_LENGTH = 12
# Kubelet and containerd expand `name:tag` to this; podman would otherwise say `localhost/`.
CANONICAL_PREFIX = "docker.io/library/"
_NAME = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
# `kind load docker-image` failures an archive gets around: Docker's containerd image store
# ("content digest ... not found"), and kind's `docker save` not seeing a podman-only image.
_NEEDS_ARCHIVE = re.compile(
    r"content digest \S+ not found|image: \"[^\"]+\" not present locally", re.IGNORECASE
)
CRICTL_IMAGES = ("crictl", "images", "-o", "json")
RESERVED_NAME = "sandbox-airflow"  # sandbox.core.airflow_image's repository: no task image may take it
_TASK_TAG = re.compile(rf"^{re.escape(CANONICAL_PREFIX)}(?P<name>[^:/]+):(?P<tag>[0-9a-f]{{{TAG_LENGTH}}})$")


class ImageEngine(Protocol):
    """What this module needs from the container engine (DockerImages in the product)."""

    def inspect(self, reference: str) -> ImageInfo | None: ...

    def build(
        self,
        context: IO[bytes],
        *,
        tag: str,
        dockerfile: str = ...,
        build_args: Mapping[str, str] | None = ...,
        labels: Mapping[str, str] | None = ...,
        on_line: Callable[[str], None] = ...,
    ) -> str: ...

    def save(self, reference: str, destination: Path) -> None: ...

    def exec(self, container: str, argv: Sequence[str]) -> str: ...

    def remove(self, reference: str) -> None: ...


@dataclass(frozen=True)
class TaskImage:
    """A folder with a Dockerfile under an images folder; the image is named after the folder."""

    name: str
    context: Path
    dockerfile: str = "Dockerfile"


@dataclass(frozen=True)
class PlannedImage:
    image: TaskImage
    context_hash: str
    build_args: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def name(self) -> str:
        return self.image.name

    @property
    def tag(self) -> str:
        return self.context_hash[:TAG_LENGTH]

    @property
    def ref(self) -> str:
        """What DAGs use and kubelet resolves: `<name>:<hash12>`."""
        return f"{self.name}:{self.tag}"

    @property
    def canonical_ref(self) -> str:
        """The same reference fully qualified: the name built, saved and looked up on nodes."""
        return CANONICAL_PREFIX + self.ref


@dataclass(frozen=True)
class BuildResult:
    name: str
    ref: str
    image_id: str
    context_hash: str
    built: bool  # False: the tag already existed, nothing was built
    seconds: float
    size: int
    created: str


@dataclass(frozen=True)
class NodeImage:
    """One entry of `crictl images -o json` on a node."""

    id: str
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    size: int


@dataclass(frozen=True)
class LoadResult:
    name: str
    ref: str
    image_id: str
    loaded_into: tuple[str, ...]
    already_on: tuple[str, ...]
    via_archive: bool = False


@dataclass(frozen=True)
class ImageStatus:
    name: str
    ref: str
    built: bool
    image_id: str | None
    size: int | None
    created: str | None
    nodes: tuple[str, ...] | None  # None: no cluster to ask


@dataclass(frozen=True)
class PruneResult:
    """Superseded task image tags removed (or, with dry_run, that would be)."""

    kept: tuple[str, ...]  # the current refs, never removed
    engine: tuple[str, ...]
    nodes: Mapping[str, tuple[str, ...]] | None  # None: no cluster to prune
    dry_run: bool


@dataclass(frozen=True)
class UpResult:
    built: list[BuildResult] = field(default_factory=list)
    loaded: list[LoadResult] = field(default_factory=list)

    @property
    def did_work(self) -> bool:
        return any(b.built for b in self.built) or any(r.loaded_into for r in self.loaded)


# --- discovery and naming (pure) -------------------------------------------------------------


def discover(settings: Settings) -> list[TaskImage]:
    """Every direct subfolder holding a Dockerfile, across the configured images folders."""
    found: dict[str, TaskImage] = {}
    for folder in settings.images_folders:
        if not folder.is_dir():
            continue
        for candidate in sorted(folder.iterdir()):
            if not (candidate.is_dir() and (candidate / "Dockerfile").is_file()):
                continue
            name = candidate.name
            if not _NAME.fullmatch(name):
                raise ConfigError(
                    f"image folder {candidate} is not a valid image name",
                    hint="rename it with lowercase letters, digits and . _ - (e.g. `feature-prep`)",
                )
            if name == RESERVED_NAME:
                raise ConfigError(
                    f"image folder {candidate}: {name!r} is the name of the sandbox's extended Airflow image",
                    hint="rename the folder",
                )
            if name in found:
                raise ConfigError(
                    f"two task images are named {name!r}: {found[name].context} and {candidate}",
                    hint="rename one folder; an image is named after its folder",
                )
            found[name] = TaskImage(name, candidate)
    return list(found.values())


def select(images: Sequence[TaskImage], names: Sequence[str] | None) -> list[TaskImage]:
    if not names:
        return list(images)
    by_name = {image.name: image for image in images}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        known = ", ".join(sorted(by_name)) or "none"
        raise UsageError(
            f"unknown task image(s): {', '.join(unknown)}",
            hint=f"task images are the folders with a Dockerfile under the images folders; known: {known}",
        )
    return [by_name[name] for name in dict.fromkeys(names)]


def build_args_for(settings: Settings, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """sandbox.toml's [build_args], with one command's `--build-arg` values on top."""
    return {**settings.build_args, **(extra or {})}


def plan_selected(
    settings: Settings,
    names: Sequence[str] | None = None,
    build_args: Mapping[str, str] | None = None,
    found: Sequence[TaskImage] | None = None,
) -> list[PlannedImage]:
    """The selected task images (of `found`, default: all discovered), planned with
    sandbox.toml's [build_args] plus this command's."""
    args = build_args_for(settings, build_args)
    return [plan(image, args) for image in select(discover(settings) if found is None else found, names)]


def plan(image: TaskImage, build_args: Mapping[str, str] | None = None) -> PlannedImage:
    args = dict(build_args or {})
    try:
        entries = context_entries(image.context, image.dockerfile)
        digest = context_hash(entries, dockerfile=image.dockerfile, build_args=args)
    except OSError as exc:
        raise ConfigError(
            f"cannot read the build context of task image {image.name!r}: {exc}",
            hint=f"make the file readable or exclude it in {image.context / '.dockerignore'}",
        ) from exc
    return PlannedImage(image, digest, args)


def labels_for(planned: PlannedImage) -> dict[str, str]:
    return {LABEL_NAME: planned.name, LABEL_HASH: planned.context_hash}


# --- node inventory (pure) -------------------------------------------------------------------


def parse_crictl_images(text: str) -> list[NodeImage]:
    """`crictl images -o json`: protojson of CRI's ListImagesResponse (size is a string)."""
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


# --- the record DAG files read ---------------------------------------------------------------


def record_path(settings: Settings) -> Path:
    return settings.dags_folder / RECORD_FILE


def read_record(settings: Settings) -> dict[str, dict[str, str]]:
    path = record_path(settings)
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text()).get("images") or {})
    except (json.JSONDecodeError, AttributeError):
        return {}


def write_record(settings: Settings, results: Sequence[BuildResult], known: Sequence[str]) -> Path:
    """Merge results into the DAG-folder record; drop images whose folder is gone. Atomic, 0644."""
    images = {name: entry for name, entry in read_record(settings).items() if name in known}
    for result in results:
        images[result.name] = {
            "image": result.ref,
            "image_id": result.image_id,
            "context_hash": result.context_hash,
            "built_at": result.created,
        }
    path = record_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"version": RECORD_VERSION, "images": dict(sorted(images.items()))}, indent=2)
    try:
        unchanged = path.read_text() == body + "\n"
    except OSError:
        unchanged = False
    if unchanged:
        return path
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".sandbox-images.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(body + "\n")
        os.chmod(tmp, 0o644)  # read by the Airflow containers' user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    touch_record_readers(settings)
    return path


def touch_record_readers(settings: Settings) -> list[Path]:
    """Bump the mtime of the DAG files that call task_image(): the record is an input of theirs
    the DAG processor cannot see. It re-parses a file when its mtime changes, and otherwise only
    every min_file_process_interval (10 min here), so without this a DAG that failed to import
    for want of an image would stay broken that long after `sandbox build`."""
    touched: list[Path] = []
    for path in sorted(settings.dags_folder.rglob("*.py")):
        try:
            if "task_image(" in path.read_text(errors="replace"):
                os.utime(path)
                touched.append(path)
        except OSError:
            continue  # unreadable or not ours to touch: it cannot be a DAG Airflow parses either
    return touched


def read_built(settings: Settings) -> dict[str, list[str]]:
    """name -> every ref of it this sandbox built, oldest first (state dir, not the DAG folder)."""
    path = StateDir(settings.state_dir).built_images_file
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, dict):
        return {}
    return {str(k): [str(r) for r in v] for k, v in images.items() if isinstance(v, list)}


def _write_built(settings: Settings, built: Mapping[str, Sequence[str]]) -> None:
    state = StateDir(settings.state_dir)
    state.ensure()
    body = {"version": 1, "images": {k: list(v) for k, v in sorted(built.items()) if v}}
    write_private(state.built_images_file, json.dumps(body, indent=2) + "\n")


@contextmanager
def _history_lock(settings: Settings) -> Iterator[None]:
    """Serialises read-modify-write of the history between a `build` and a `prune` running at once."""
    state = StateDir(settings.state_dir)
    state.ensure()
    with open(state.built_images_file.with_suffix(".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def remember_built(settings: Settings, refs: Sequence[str]) -> None:
    with _history_lock(settings):
        built = read_built(settings)
        for ref in refs:
            name = ref.partition(":")[0]
            history = built.setdefault(name, [])
            if ref not in history:
                history.append(ref)
        _write_built(settings, built)


# --- build -----------------------------------------------------------------------------------


def _planned(
    settings: Settings, names: Sequence[str] | None, build_args: Mapping[str, str] | None
) -> tuple[list[PlannedImage], list[str]]:
    images = discover(settings)
    if not images:
        folders = ", ".join(str(f) for f in settings.images_folders)
        raise ConfigError(
            f"no task images found under {folders}",
            hint="add a folder with a Dockerfile there (its name is the image name)",
        )
    return plan_selected(settings, names, build_args, images), [i.name for i in images]


def _trimmed(lines: Sequence[str]) -> list[str]:
    kept = list(lines)
    while kept and not kept[-1].strip():
        kept.pop()
    return kept


def _reason(error: str) -> str:
    """Podman repeats the step in its error (`building at STEP "RUN ...": why`); keep the why."""
    match = re.match(r'building at STEP ".*": (.+)$', error, re.DOTALL)
    return match.group(1) if match else error


def _build_one(planned: PlannedImage, reporter: Reporter, client: ImageEngine) -> BuildResult:
    existing = client.inspect(planned.canonical_ref)
    if existing is not None:
        reporter.info(f"{planned.ref} is up to date (context unchanged)")
        return BuildResult(
            planned.name, planned.ref, existing.id, planned.context_hash, False, 0.0,
            existing.size, existing.created,
        )
    started = time.monotonic()
    image = planned.image
    with reporter.step(f"build {planned.ref}"), tempfile.TemporaryFile() as context:
        write_context_tar(context_entries(image.context, image.dockerfile), context)
        try:
            image_id = client.build(
                context,
                tag=planned.canonical_ref,
                dockerfile=image.dockerfile,
                build_args=planned.build_args,
                labels=labels_for(planned),
                on_line=reporter.output,
            )
        except BuildFailed as exc:
            for line in _trimmed(exc.failure.step_output)[-40:]:
                reporter.info(line)
            where = f" at `{exc.failure.step}`" if exc.failure.step else ""
            raise BuildFailed(
                f"task image {planned.name!r} failed to build{where}: {_reason(exc.failure.error)}",
                exc.failure,
                hint=f"fix {image.context / image.dockerfile} (the step's output is above), "
                f"then run `sandbox build {planned.name}`",
            ) from exc
    info = client.inspect(planned.canonical_ref)
    if info is None:
        raise ImageBuildError(f"{planned.ref} was built but the engine does not list it")
    return BuildResult(
        planned.name, planned.ref, image_id, planned.context_hash, True,
        time.monotonic() - started, info.size, info.created,
    )


def build(
    settings: Settings,
    reporter: Reporter,
    client: ImageEngine,
    names: Sequence[str] | None = None,
    *,
    build_args: Mapping[str, str] | None = None,
) -> list[BuildResult]:
    """Build every selected image whose content tag does not exist yet; record the tags."""
    planned, known = _planned(settings, names, build_args)
    return _build_planned(settings, reporter, client, planned, known)


def _build_planned(
    settings: Settings,
    reporter: Reporter,
    client: ImageEngine,
    planned: Sequence[PlannedImage],
    known: Sequence[str],
) -> list[BuildResult]:
    results: list[BuildResult] = []
    try:
        for item in planned:
            results.append(_build_one(item, reporter, client))
    finally:
        if results:
            write_record(settings, results, known)
            remember_built(settings, [r.ref for r in results if r.built])  # never another checkout's
    return results


# --- load ------------------------------------------------------------------------------------


def node_inventory(client: ImageEngine, node: str) -> list[NodeImage]:
    return parse_crictl_images(client.exec(node, CRICTL_IMAGES))


def cluster_nodes(settings: Settings, kind: KindCli) -> list[str]:
    nodes = kind.nodes(settings.cluster_name)
    if not nodes:
        raise ClusterError(
            f"no kind cluster named {settings.cluster_name!r} is running",
            hint="run `sandbox up` first",
        )
    return nodes


def _load_into(
    settings: Settings, client: ImageEngine, kind: KindCli, planned: PlannedImage, nodes: list[str],
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
            reporter.info(f"kind load docker-image failed ({exc.stderr.strip().splitlines()[-1]}); "
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
    kind: KindCli,
    names: Sequence[str] | None = None,
    *,
    build_args: Mapping[str, str] | None = None,
) -> list[LoadResult]:
    """Load each selected image into the nodes lacking its ID, then check the nodes have it."""
    planned, _ = _planned(settings, names, build_args)
    return _load_planned(settings, reporter, client, kind, planned)


def _load_planned(
    settings: Settings,
    reporter: Reporter,
    client: ImageEngine,
    kind: KindCli,
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
    inventory = {node: node_inventory(client, node) for node in nodes}
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
                inventory[node] = node_inventory(client, node)
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


# --- prune -----------------------------------------------------------------------------------


def superseded_on_node(inventory: Sequence[NodeImage], current: Mapping[str, Collection[str]]) -> list[NodeImage]:
    """Node images tagged only with content tags of known task images, none of them current.

    `current` maps image name to the canonical refs that stay. An image carrying any other tag (a
    user's, a system image) is never a candidate, so only what `sandbox load` put there can go.
    """
    keep = {ref for refs in current.values() for ref in refs}
    stale: list[NodeImage] = []
    for image in inventory:
        matches = [_TASK_TAG.match(tag) for tag in image.repo_tags]
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
    with _history_lock(settings):
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
            _write_built(settings, built)
    return removed


def prune(
    settings: Settings,
    reporter: Reporter,
    client: ImageEngine,
    kind: KindCli | None,
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
    from sandbox.core.airflow_image import planned_ref

    planned = plan_selected(settings, names, build_args)
    # What the DAGs use (the record) stays too: it may differ from what the sources give now
    # (edited since the build, or built with other --build-arg values).
    recorded = {
        name: CANONICAL_PREFIX + entry["image"] for name, entry in read_record(settings).items() if entry.get("image")
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
            stale = superseded_on_node(node_inventory(client, node), current)
            if stale and not dry_run:
                with reporter.step(f"remove {len(stale)} superseded image(s) from {node}"):
                    client.exec(node, ["crictl", "rmi", *(image.id for image in stale)])
            nodes_removed[node] = tuple(
                sorted(tag.removeprefix(CANONICAL_PREFIX) for image in stale for tag in image.repo_tags)
            )
    else:
        reporter.info(f"no running cluster {settings.cluster_name!r}: only local images pruned")
    kept = tuple(sorted(ref.removeprefix(CANONICAL_PREFIX) for refs in engine_current.values() for ref in refs))
    return PruneResult(kept, tuple(engine_removed), nodes_removed, dry_run)


# --- `sandbox up` and `sandbox images` -------------------------------------------------------


def connect(settings: Settings) -> tuple[DockerImages, KindCli]:
    """The engine (Docker's socket or podman's) and the kind CLI with the matching provider."""
    from sandbox.adapters.runtime import detect_runtime
    from sandbox.core.tools import find_tool

    runtime = detect_runtime(settings)
    kind_binary = find_tool("kind", settings)  # PATH, or the pinned copy `up` downloaded
    return DockerImages(runtime.base_url), KindCli(
        str(kind_binary) if kind_binary else "kind", provider=runtime.kind_provider
    )


def build_and_load(
    settings: Settings,
    reporter: Reporter,
    *,
    names: Sequence[str] | None = None,
    build_args: Mapping[str, str] | None = None,
    client: ImageEngine | None = None,
    kind: KindCli | None = None,
) -> UpResult:
    """The last step of `sandbox up`: nothing to do when tags exist and nodes hold their IDs."""
    if client is None or kind is None:
        default_client, default_kind = connect(settings)
        client, kind = client or default_client, kind or default_kind
    if not discover(settings):
        reporter.info("no task images to build")
        return UpResult()
    planned, known = _planned(settings, names, build_args)
    built = _build_planned(settings, reporter, client, planned, known)
    return UpResult(built, _load_planned(settings, reporter, client, kind, planned))


def status(
    settings: Settings,
    client: ImageEngine,
    kind: KindCli | None,
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
            inventory = {node: node_inventory(client, node) for node in nodes} if nodes else None
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

