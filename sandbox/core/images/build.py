"""`sandbox build`: build each selected task image whose content tag does not exist yet."""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sandbox.adapters.docker_images import BuildFailed
from sandbox.config import Settings
from sandbox.core.build_context import context_entries, write_context_tar
from sandbox.core.images.history import remember_built
from sandbox.core.images.naming import PlannedImage, labels_for, plan_all
from sandbox.core.images.records import write_dag_record
from sandbox.core.ports import ImageEngine
from sandbox.errors import ImageBuildError
from sandbox.progress import Reporter
from sandbox.text import trimmed


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
            for line in trimmed(exc.failure.step_output)[-40:]:
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
    planned, known = plan_all(settings, names, build_args)
    return build_planned(settings, reporter, client, planned, known)


def build_planned(
    settings: Settings,
    reporter: Reporter,
    client: ImageEngine,
    planned: Sequence[PlannedImage],
    known: Sequence[str],
    *,
    record: bool = True,
) -> list[BuildResult]:
    """`record=False`: the caller writes the DAG record itself (after loading the images)."""
    results: list[BuildResult] = []
    try:
        for item in planned:
            results.append(_build_one(item, reporter, client))
    finally:
        if results:
            if record:
                write_dag_record(settings, results, known)
            remember_built(settings, [r.ref for r in results if r.built])  # never another checkout's
    return results
