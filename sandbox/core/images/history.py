"""`.sandbox/images-built.json`: every image ref this sandbox built, which `sandbox prune` may
remove from the engine (another project's images share it). Read-modify-write under a file lock,
so a build racing a prune cannot drop entries."""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from sandbox.config import Settings
from sandbox.state import StateDir, write_private


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


def write_built(settings: Settings, built: Mapping[str, Sequence[str]]) -> None:
    state = StateDir(settings.state_dir)
    state.ensure()
    body = {"version": 1, "images": {k: list(v) for k, v in sorted(built.items()) if v}}
    write_private(state.built_images_file, json.dumps(body, indent=2) + "\n")


@contextmanager
def history_lock(settings: Settings) -> Iterator[None]:
    """Serialises read-modify-write of the history between a `build` and a `prune` running at once."""
    state = StateDir(settings.state_dir)
    state.ensure()
    with open(state.built_images_file.with_suffix(".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def remember_built(settings: Settings, refs: Sequence[str]) -> None:
    with history_lock(settings):
        built = read_built(settings)
        for ref in refs:
            name = ref.partition(":")[0]
            history = built.setdefault(name, [])
            if ref not in history:
                history.append(ref)
        write_built(settings, built)
