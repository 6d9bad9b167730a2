"""Files the tool ships beside its code: the compose stack, the default kind config and the
DAG-side helper (`sandbox_tasks`, which `sandbox init` vendors into a project's DAG folder).

One copy of each lives in the repository where the sample project uses it (compose/,
kind-config.yaml, sample_dags/sandbox_tasks/). A wheel carries them under sandbox/_packaged/
(setup.py's build step copies them there); a source checkout reads them in place. Standard
library only: setup.py imports this module to know what to copy.
"""

from __future__ import annotations

from pathlib import Path

# packaged name -> the one copy in the repository (relative to its root)
SHIPPED: dict[str, str] = {
    "compose": "compose",
    "kind-config.yaml": "kind-config.yaml",
    "sandbox_tasks": "sample_dags/sandbox_tasks",
}
PACKAGED_DIR = Path(__file__).resolve().parent / "_packaged"
SOURCE_ROOT = Path(__file__).resolve().parent.parent


def shipped(name: str) -> Path:
    """Where the tool's copy of `name` (a key of SHIPPED) is: in the wheel, else the checkout."""
    packaged = PACKAGED_DIR / name
    return packaged if packaged.exists() else SOURCE_ROOT / SHIPPED[name]


def is_shipped(path: Path) -> bool:
    """True when `path` is one of the tool's own files, not a project's."""
    resolved = path.resolve()
    return any(resolved == (s := shipped(n)) or s in resolved.parents for n in SHIPPED)
