"""`sandbox pause|unpause|clear|mark|runs`: thin commands over sandbox.core.ops.

`clear` renders like run-dag (sandbox.cli.runs: live table on stderr, summary on stdout) and
exits like it: 0 every re-run succeeded, 1 one failed, 2 bad input.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import typer

from sandbox.cli import console
from sandbox.cli.console import escape
from sandbox.cli.runs import _print_run_summary, _seconds, _state, run_table

if TYPE_CHECKING:
    from sandbox.adapters.airflow_api import AirflowApi
    from sandbox.config import Settings
    from sandbox.core.ops import ClearRequest, ClearResult, MarkResult, RunRow, RunsReport


def _pause(ctx: typer.Context, dag_ids: list[str] | None, all_dags: bool, as_json: bool, paused: bool) -> None:
    from sandbox.core.ops import set_paused

    with ctx.obj.adapters().airflow() as api:
        changes = set_paused(api, dag_ids or [], paused=paused, all_dags=all_dags)
    if as_json:
        console.out.print_json(json.dumps({"dags": [c.to_json() for c in changes]}))
        return
    word = "paused" if paused else "unpaused"
    for change in changes:
        already = " (already)" if change.was_paused == paused else ""
        console.out.print(f"{escape(change.dag_id)}: {word}{already}")


def pause(
    ctx: typer.Context,
    dag_ids: list[str] = typer.Argument(None, help="DAG ids.", show_default=False),
    all_dags: bool = typer.Option(False, "--all", help="Every DAG Airflow knows."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Pause DAGs: the scheduler starts no new runs or tasks of them; running tasks finish."""
    _pause(ctx, dag_ids, all_dags, as_json, paused=True)


def unpause(
    ctx: typer.Context,
    dag_ids: list[str] = typer.Argument(None, help="DAG ids.", show_default=False),
    all_dags: bool = typer.Option(False, "--all", help="Every DAG Airflow knows."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Unpause DAGs: their schedules start runs again (catch-up included if the DAG asks)."""
    _pause(ctx, dag_ids, all_dags, as_json, paused=False)


def _dates(date: str | None, start: str | None, end: str | None) -> tuple[Any, Any]:
    from sandbox.core.dates import parse_logical_date
    from sandbox.errors import UsageError

    if date is not None and (start is not None or end is not None):
        raise UsageError("give --date or --start/--end, not both", hint="e.g. --date 2021-12-01")
    if date is not None:
        day = parse_logical_date(date)
        return day, day
    if start is None or end is None:
        raise UsageError("give --date, or both --start and --end", hint="e.g. --start 2021-12-01 --end 2021-12-07")
    return parse_logical_date(start, option="--start"), parse_logical_date(end, option="--end")


def clear(
    ctx: typer.Context,
    dag_id: str = typer.Argument(..., help="The DAG id."),
    date: str = typer.Option(None, "--date", "-d", help="One logical date."),
    start: str = typer.Option(None, "--start", help="First logical date (inclusive)."),
    end: str = typer.Option(None, "--end", help="Last logical date (inclusive)."),
    tasks: list[str] = typer.Option(None, "--task", "-t", help="Only this task (repeatable); default all."),
    downstream: bool = typer.Option(False, "--downstream", help="Also the tasks downstream of --task."),
    upstream: bool = typer.Option(False, "--upstream", help="Also the tasks upstream of --task."),
    only_failed: bool = typer.Option(False, "--only-failed", help="Only failed (and upstream_failed) tasks."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be cleared; change nothing."),
    logs: bool = typer.Option(True, "--logs/--no-logs", help="Stream pod tasks' logs as they grow."),
    timeout: float = typer.Option(None, "--timeout", min=1, help="Seconds to wait for the re-runs."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Clear task instances so the scheduler runs them again, and follow the re-runs live."""
    from sandbox.core.ops import ClearRequest

    first, last = _dates(date, start, end)
    request = ClearRequest(
        dag_id=dag_id, start=first, end=last, task_ids=tuple(tasks or ()), downstream=downstream,
        upstream=upstream, only_failed=only_failed, dry_run=dry_run, logs=logs, timeout=timeout,
    )
    with ctx.obj.adapters().airflow() as api:
        result = clear_live(api, ctx.obj.settings(), request)
    if as_json:
        console.out.print_json(json.dumps(result.to_json()))
    else:
        _print_clear(result)
    if not result.ok:
        raise typer.Exit(1)


def clear_live(api: AirflowApi, settings: Settings, request: ClearRequest) -> ClearResult:
    """Clear, then follow the re-runs with a live table and their pods' logs (`clear`, `run-task`)."""
    from rich.live import Live

    from sandbox.core.ops import clear as core_clear

    with Live(console=console.err, refresh_per_second=4, transient=True) as live:
        live.update(f"clearing {escape(request.dag_id)}…")

        def on_log(task: str, line: str) -> None:
            live.console.print(f"[dim]{escape(task)} |[/] {escape(line)}", soft_wrap=True)

        return core_clear(
            api,
            settings,
            request,
            on_cleared=lambda tis: live.console.print(f"cleared {len(tis)} task instance(s)"),
            on_started=lambda run: live.console.print(f"re-running {escape(run.dag_id)} {escape(run.run_id)}"),
            on_update=lambda snapshot: live.update(run_table(snapshot)),
            on_log=on_log,
        )


def _print_clear(result: ClearResult) -> None:
    from rich.table import Table

    from sandbox.core.dates import format_logical_date

    if result.dry_run:
        table = Table(title=f"would clear ({len(result.cleared)}), nothing changed", title_justify="left")
        for column in ("logical date", "task", "state", "run id"):
            table.add_column(column)
        for ti in result.cleared:
            table.add_row(format_logical_date(ti.logical_date), escape(ti.key), _state(ti.state), escape(ti.run_id or "-"))
        console.out.print(table)
        return
    for run in result.runs:
        _print_run_summary(run)


def mark(
    ctx: typer.Context,
    dag_id: str = typer.Argument(..., help="The DAG id."),
    state: str = typer.Argument(..., help="success or failed."),
    date: str = typer.Option(..., "--date", "-d", help="The run's logical date."),
    task: str = typer.Option(..., "--task", "-t", help="The task to mark."),
    downstream: bool = typer.Option(False, "--downstream", help="Also its downstream tasks."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Set a task of one run to success or failed without running it (the UI's "Mark as")."""
    from sandbox.core.dates import parse_logical_date
    from sandbox.core.ops import mark as core_mark

    day = parse_logical_date(date)
    settings = ctx.obj.settings()
    with ctx.obj.adapters().airflow() as api:
        result = core_mark(api, settings, dag_id, day, task, state, downstream=downstream)
    if as_json:
        console.out.print_json(json.dumps(result.to_json()))
    else:
        _print_mark(result)


def _print_mark(result: MarkResult) -> None:
    from rich.table import Table

    from sandbox.core.dates import format_logical_date

    run = result.run
    table = Table(
        title=f"{escape(run.dag_id)} · {format_logical_date(run.logical_date)} · run {_state(run.state)}",
        title_justify="left",
    )
    table.add_column("task")
    table.add_column("state")
    for ti in result.tasks:
        table.add_row(escape(ti.key), _state(ti.state))
    console.out.print(table)
    console.out.print(f"marked {escape(result.task_id)} {_state(result.state)}; run: {escape(result.url)}", soft_wrap=True)


# The columns of `sandbox runs`, in order: header and how a row shows it. A new column (the
# lineage issue's metrics) is a field on RunRow plus an entry here.
RUN_COLUMNS: tuple[tuple[str, Callable[[RunRow], str]], ...] = (
    ("logical date", lambda r: _date(r.logical_date)),
    ("type", lambda r: escape(r.run_type)),
    ("state", lambda r: _state(r.state)),
    ("started", lambda r: r.start_date.strftime("%Y-%m-%d %H:%M:%S") if r.start_date else "-"),
    ("duration", lambda r: _seconds(r.duration_s)),
    ("run id", lambda r: escape(r.run_id)),
    ("metrics", lambda r: escape(_metrics_text(r.metrics))),
)


def _metrics_text(metrics: Mapping[str, Mapping[str, float]], limit: int = 3) -> str:
    """`task: name=value, …; …`, at most `limit` numbers a task (`sandbox compare` has all)."""
    parts = []
    for task, numbers in sorted(metrics.items()):
        shown = ", ".join(f"{k}={v:.6g}" for k, v in sorted(numbers.items())[:limit])
        parts.append(f"{task}: {shown}")
    return "; ".join(parts) or "-"


def _date(value: Any) -> str:
    from sandbox.core.dates import format_logical_date

    return format_logical_date(value)


def runs(
    ctx: typer.Context,
    dag_id: str = typer.Argument(..., help="The DAG id."),
    states: list[str] = typer.Option(None, "--state", "-s", help="Only runs in this state (repeatable): queued, running, success, failed."),
    last: int = typer.Option(None, "--last", "-n", min=1, help="Only the newest N runs."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """A DAG's runs: logical date, run type, state, start, duration and each task's metrics."""
    from sandbox.core.ops import runs_report

    with ctx.obj.adapters().airflow() as api:
        report = runs_report(api, dag_id, states=tuple(states or ()), last=last)
    if as_json:
        console.out.print_json(json.dumps(report.to_json()))
        return
    _print_runs(report)


def _print_runs(report: RunsReport) -> None:
    from rich.table import Table

    table = Table(title=f"runs of {escape(report.dag_id)} ({len(report.rows)})", title_justify="left")
    for header, _ in RUN_COLUMNS:
        table.add_column(header, justify="right" if header == "duration" else "left")
    for row in report.rows:
        table.add_row(*(cell(row) for _, cell in RUN_COLUMNS))
    console.out.print(table)


def register(app: typer.Typer) -> None:
    for command in (pause, unpause, clear, mark, runs):
        app.command(command.__name__)(command)
