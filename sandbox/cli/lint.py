"""`sandbox lint`: check DAGs' pod tasks against the AKS virtual node's (ACI's) rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from sandbox.cli import console
from sandbox.cli.console import escape

if TYPE_CHECKING:
    from sandbox.core.lint import LintReport

_TARGET_STYLE = {
    "virtual-node": "cyan",
    "virtual-node-or-worker": "cyan",
    "worker": "green",
    "unschedulable": "red",
    "not-rendered": "red",
}


def lint(
    ctx: typer.Context,
    dags_folder: Optional[Path] = typer.Argument(  # noqa: UP007 - typer needs Optional
        None, help="Folder of DAG files (default: dags_folder from the sandbox config)."
    ),
    profile: Optional[str] = typer.Option(  # noqa: UP007
        None, "--profile", help="Rule profile: aci-v1 (AKS virtual nodes) or aci-v2 (virtual nodes v2)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the findings as a JSON list."),
) -> None:
    """Predict where each KubernetesPodOperator task runs and check it against ACI's limits.

    Exit 1 on any violation or import error; warnings (fields ACI ignores) do not fail.
    """
    from sandbox.core.lint import lint_dags
    from sandbox.errors import LintFailed

    settings = ctx.obj.settings(**({"profile": profile} if profile else {}))
    reporter = ctx.obj.reporter()
    with reporter.step(f"Linting {dags_folder or settings.dags_folder} ({settings.profile})"):
        report = lint_dags(settings, dags_folder)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        _print(report)
    if not report.ok:
        raise LintFailed(report.summary())


def _print(report: LintReport) -> None:
    out = console.out
    for problem in report.import_errors:
        out.print(f"[red]✗ {escape(problem.file)}[/]: import error: {escape(problem.message)}", soft_wrap=True)
    for dag_id in report.missing_dags:
        out.print(f"[red]✗ DAG {escape(dag_id)}[/]: not found in {escape(str(report.folder))}", soft_wrap=True)
    for task in report.tasks:
        style = _TARGET_STYLE.get(task.target, "white")
        out.print(
            f"[bold]{escape(task.dag_id)}.{escape(task.task_id)}[/] → [{style}]{task.target}[/]"
            f" [dim]({escape(task.reason)})[/]",
            soft_wrap=True,
        )
        for finding in task.violations:
            out.print(f"  [red]✗[/] {escape(finding.message)}", soft_wrap=True)
        for finding in task.warnings:
            out.print(f"  [yellow]![/] {escape(finding.message)}", soft_wrap=True)
    if report.ok:  # otherwise the error line at the CLI edge carries the summary
        out.print(f"[green]✓[/] {escape(report.summary())}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("lint")(lint)
