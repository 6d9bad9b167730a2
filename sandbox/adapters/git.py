"""git, read-only: which commit the DAG folder is at and whether it has uncommitted changes.

`run-dag` and `backfill` ask this at trigger time and write the answer into the run's note
(sandbox.core.lineage.source_note): the DAG folder is bind-mounted into the Airflow containers
without its `.git`, so the worker cannot ask git itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sandbox.errors import ToolMissing
from sandbox.proc import Runner, run


@dataclass(frozen=True)
class Source:
    commit: str
    dirty: bool  # uncommitted or untracked changes under the folder


def source_of(folder: Path, *, runner: Runner = run) -> Source | None:
    """The HEAD commit of the repository holding `folder` and whether `folder` is dirty; None
    when it is not in a git work tree, git is missing or the repository has no commit yet."""
    try:
        head = runner(["git", "-C", str(folder), "rev-parse", "--verify", "-q", "HEAD"], check=False)
        if head.returncode != 0:
            return None
        status = runner(
            ["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=normal", "--", "."],
            check=False,
        )
    except ToolMissing:
        return None
    if status.returncode != 0:
        return None
    return Source(head.stdout.strip(), bool(status.stdout.strip()))
