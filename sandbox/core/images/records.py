"""The DAG folder's record `.sandbox-images.json`: which tag each task image has now.

DAG files read it through sandbox_tasks.task_image() inside the Airflow containers (where the
sandbox package is not installed), so it is plain JSON, 0644, replaced atomically.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox.config import Settings

if TYPE_CHECKING:
    from sandbox.core.images.build import BuildResult

RECORD_FILE = ".sandbox-images.json"
# The DAG-side helper (sample_dags/sandbox_tasks/images.py) reads the record from this variable
# when set; `sandbox lint` uses it to resolve tags before anything is built.
RECORD_ENV = "SANDBOX_TASK_IMAGE_RECORD"
RECORD_VERSION = 1


def dag_record_path(settings: Settings) -> Path:
    return settings.dags_folder / RECORD_FILE


def read_dag_record(settings: Settings) -> dict[str, dict[str, str]]:
    path = dag_record_path(settings)
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text()).get("images") or {})
    except (json.JSONDecodeError, AttributeError):
        return {}


def write_dag_record(settings: Settings, results: Sequence[BuildResult], known: Sequence[str]) -> Path:
    """Merge results into the DAG-folder record; drop images whose folder is gone. Atomic, 0644."""
    images = {name: entry for name, entry in read_dag_record(settings).items() if name in known}
    for result in results:
        images[result.name] = {
            "image": result.ref,
            "image_id": result.image_id,
            "context_hash": result.context_hash,
            "built_at": result.created,
        }
    path = dag_record_path(settings)
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
