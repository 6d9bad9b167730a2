"""Task images: found, named and tagged by content (pure: files only, no engine).

A task image is a folder with a Dockerfile under an images folder, named after the folder; its
tag is the first 12 hex digits of the hash of its build context, so an existing tag means
nothing to build.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.config import Settings
from sandbox.core.build_context import context_entries, context_hash
from sandbox.errors import ConfigError, UsageError

LABEL_NAME = "sandbox.task-image"
LABEL_HASH = "sandbox.context-hash"
TAG_LENGTH = 12
# Kubelet and containerd expand `name:tag` to this; podman would otherwise say `localhost/`.
CANONICAL_PREFIX = "docker.io/library/"
RESERVED_NAME = "sandbox-airflow"  # sandbox.core.images.airflow's repository: no task image may take it
_NAME = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
TASK_TAG = re.compile(rf"^{re.escape(CANONICAL_PREFIX)}(?P<name>[^:/]+):(?P<tag>[0-9a-f]{{{TAG_LENGTH}}})$")


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


def plan_all(
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


