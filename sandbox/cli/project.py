"""`sandbox init`: make a folder a sandbox project (scaffold, never overwrite)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer

from sandbox.cli import console
from sandbox.cli.console import escape


def init(
    folder: Optional[Path] = typer.Argument(  # noqa: UP007 - typer needs Optional
        None, help="Project folder to scaffold (created if missing; default: the current folder)."
    ),
    update_helper: bool = typer.Option(
        False, "--update-helper", help="Replace the vendored DAG-side helper (dags/sandbox_tasks) with this tool's copy."
    ),
    action: Optional[str] = typer.Option(  # noqa: UP007 - typer needs Optional
        None, "--action", metavar="OWNER/REPO@REF",
        help="The GitHub Action the scaffolded workflow uses (default: this tool's repository at its release tag).",
    ),
) -> None:
    """Scaffold a project: sandbox.toml, an example DAG and task image, the DAG-side helper,
    .gitignore lines and a GitHub Actions workflow. Existing files are left alone."""
    from sandbox.core.scaffold import init_project
    from sandbox.errors import UsageError

    if action is not None and not re.fullmatch(r"[\w.-]+/[\w./-]+@[\w./-]+", action):
        raise UsageError(f"--action {action!r} is not OWNER/REPO@REF", hint="e.g. --action my-org/sandbox@v0.1.0")
    target = folder or Path.cwd()
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target} is not a folder", hint="pass a folder (new or existing) to `sandbox init`")
    report = init_project(target, action=action, update_helper=update_helper)
    out = console.out
    out.print(f"[bold]project[/] {escape(str(report.project_dir))}", soft_wrap=True)
    for name in report.created:
        out.print(f"  [green]created[/]     {escape(name)}", soft_wrap=True)
    for name in report.updated:
        out.print(f"  [yellow]updated[/]     {escape(name)}", soft_wrap=True)
    for name in report.kept:
        out.print(f"  [dim]left alone[/]  {escape(name)} [dim](already there)[/]", soft_wrap=True)
    if not report.changed:
        out.print("nothing to do: the project is already scaffolded")
        return
    where = "" if report.project_dir == Path.cwd().resolve() else f"cd {report.project_dir} && "
    out.print(f"next: {escape(where)}sandbox up && sandbox run-dag example --date 2021-12-01", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
