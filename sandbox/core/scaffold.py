"""`sandbox init`: scaffold a project into a new or existing folder, never overwriting a file.

What a project gets: sandbox.toml, a DAG folder with an example DAG whose pod task runs on the
virtual node, the DAG-side helper `sandbox_tasks` vendored next to it (see `helper_drift`), an
example task image, `.sandbox/` in .gitignore and a GitHub Actions workflow using the sandbox's
action. The templates are package data (sandbox/scaffold/); the helper is the tool's shipped
copy (sandbox.resources), the very files the repository's sample DAGs import.

Why vendored and not a distribution: DAG files run in Airflow images the sandbox does not build
in production (AKS), where adding a package means a new image or a requirements change per
team; a folder in the DAG bundle goes wherever the DAGs go, with no install step. The cost is
drift: `sandbox lint` warns when the vendored copy differs from the installed tool's, and
`sandbox init --update-helper` replaces it (the one thing init overwrites, and only when asked).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.config import load_settings, tool_action
from sandbox.resources import shipped

TEMPLATES = Path(__file__).resolve().parent.parent / "scaffold"
HELPER = "sandbox_tasks"
GITIGNORE_LINES = (".sandbox/", ".sandbox-images.json")


@dataclass
class InitReport:
    """What `init` did, path by path, relative to the project folder."""

    project_dir: Path
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)


def project_name(folder: Path) -> str:
    """A valid sandbox name from the folder's name (lowercase, digits, dashes, ≤ 31)."""
    name = re.sub(r"[^a-z0-9-]+", "-", folder.resolve().name.lower()).strip("-")[:31].strip("-")
    return name if name and name[0].isalnum() else "sandbox"


def init_project(folder: Path, *, action: str | None = None, update_helper: bool = False) -> InitReport:
    """`action`: the workflow's `uses:` (default: this tool's repository at its release tag)."""
    action = action or tool_action()
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    report = InitReport(folder)
    _write(report, "sandbox.toml", (TEMPLATES / "sandbox.toml").read_text().format(name=project_name(folder)))
    # An existing sandbox.toml may name other folders: scaffold into those.
    settings = load_settings(folder, environ={})
    dags = settings.dags_folder
    images = settings.images_folders[0] if settings.images_folders else folder / "images"
    _write(report, dags / "example.py", (TEMPLATES / "dags" / "example.py").read_text())
    _write(report, dags / ".airflowignore", (TEMPLATES / "dags" / "airflowignore").read_text())
    for template in sorted(p for p in (TEMPLATES / "images" / "example").iterdir() if p.is_file()):
        _write(report, images / "example" / template.name, template.read_text())
    for source in _helper_files():
        _write(report, dags / HELPER / source.name, source.read_text(), overwrite=update_helper)
    workflow = (TEMPLATES / "workflows" / "sandbox.yml").read_text().format(action=action)
    _write(report, ".github/workflows/sandbox.yml", workflow)
    _ensure_lines(report, folder / ".gitignore", GITIGNORE_LINES)
    return report


def helper_drift(dags_folder: Path) -> list[str]:
    """The vendored helper's files that differ from (or lack) the installed tool's copy; empty
    when there is no vendored helper or it matches."""
    vendored = dags_folder / HELPER
    if not vendored.is_dir() or vendored.resolve() == shipped(HELPER).resolve():
        return []
    return [
        source.name
        for source in _helper_files()
        if not (vendored / source.name).is_file() or (vendored / source.name).read_bytes() != source.read_bytes()
    ]


def _helper_files() -> list[Path]:
    return sorted(shipped(HELPER).glob("*.py"))


def _relative(report: InitReport, path: Path) -> str:
    try:
        return str(path.relative_to(report.project_dir))
    except ValueError:
        return str(path)


def _write(report: InitReport, path: Path | str, text: str, *, overwrite: bool = False) -> None:
    path = report.project_dir / path
    name = _relative(report, path)
    if path.exists():
        if not overwrite or path.read_text() == text:
            report.kept.append(name)
            return
        report.updated.append(name)
    else:
        report.created.append(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _ensure_lines(report: InitReport, path: Path, lines: tuple[str, ...]) -> None:
    """Append the missing lines to a text file (creating it); the user's lines stay as they are."""
    name = _relative(report, path)
    existing = path.read_text() if path.exists() else None
    have = set((existing or "").splitlines())
    missing = [line for line in lines if line not in have]
    if not missing:
        report.kept.append(name)
        return
    (report.updated if existing is not None else report.created).append(name)
    prefix = "" if not existing or existing.endswith("\n") else "\n"
    with path.open("a") as handle:
        handle.write(prefix + "".join(f"{line}\n" for line in missing))
