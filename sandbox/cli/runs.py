"""`sandbox run-dag`, `sandbox backfill`, `sandbox dags`: thin commands over sandbox.core.runs.

Progress (the live table, streamed pod logs) goes to stderr; the result (summary or --json) to
stdout. Exit 0: success; 1: a failed run; 2: bad input.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer

from sandbox.cli import console
from sandbox.cli.console import escape
from sandbox.errors import LintFailed, UsageError

if TYPE_CHECKING:
    from rich.table import Table

    from sandbox.adapters.airflow_api import DagRun, TaskInstance
    from sandbox.config import Settings
    from sandbox.core.follow import BackfillSnapshot, RunSnapshot
    from sandbox.core.runs import BackfillResult, DagsReport, RunResult

STATE_STYLE = {
    "success": "green",
    "failed": "red",
    "upstream_failed": "red",
    "up_for_retry": "yellow",
    "running": "cyan",
    "queued": "blue",
    "scheduled": "blue",
    "skipped": "magenta",
}


def _state(state: str | None) -> str:
    text = state or "none"
    style = STATE_STYLE.get(text, "dim")
    return f"[{style}]{escape(text)}[/]"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def _parse_conf(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        conf = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"--conf is not valid JSON: {exc.msg} (at character {exc.pos})",
            hint='pass a JSON object, e.g. --conf \'{"limit": 10}\'',
        ) from None
    if not isinstance(conf, dict):
        raise UsageError("--conf must be a JSON object", hint='e.g. --conf \'{"limit": 10}\'')
    return conf


def _lint(settings: Settings, dag_id: str) -> None:
    """ACI rules before anything runs; parse problems are left to Airflow (richer message)."""
    from sandbox.core.lint import lint_dags

    report = lint_dags(settings, dag_ids=[dag_id])
    if report.violation_count:
        for line in report.lines():
            console.err.print(escape(line))
        raise LintFailed(report.summary())


def _require_api(ctx: typer.Context) -> None:
    from sandbox.errors import StackError

    try:
        ctx.obj.adapters().health(ctx.obj.settings().api_url)
    except StackError as exc:
        raise StackError(exc.message, hint="start the sandbox with `sandbox up` (`sandbox status` shows what is down)") from None


# -- live rendering ------------------------------------------------------------------------------
def _elapsed(ti: TaskInstance) -> float | None:
    if ti.duration is not None:
        return float(ti.duration)
    if ti.start_date is not None:
        return (datetime.now(UTC) - ti.start_date).total_seconds()
    return None


def run_table(snapshot: RunSnapshot) -> Table:
    from rich.table import Table

    from sandbox.core.dates import format_logical_date

    run = snapshot.run
    table = Table(
        title=(
            f"{escape(run.dag_id)} · {format_logical_date(run.logical_date)} · "
            f"{_state(run.state)}"
        ),
        title_justify="left",
    )
    for column in ("task", "state", "try", "elapsed"):
        table.add_column(column, justify="right" if column in ("try", "elapsed") else "left")
    for ti in snapshot.tasks:
        table.add_row(escape(ti.key), _state(ti.state), str(ti.try_number), _seconds(_elapsed(ti)))
    return table


def backfill_table(snapshot: BackfillSnapshot) -> Table:
    from rich.table import Table

    from sandbox.core.dates import format_logical_date

    bf = snapshot.backfill
    title = (
        f"backfill {bf.id} of {escape(bf.dag_id)} · {format_logical_date(bf.from_date)} → "
        f"{format_logical_date(bf.to_date)} · max {bf.max_active_runs} at once"
    )
    table = Table(title=title, title_justify="left")
    for column in ("logical date", "state", "run id"):
        table.add_column(column)
    for run in snapshot.runs:
        table.add_row(format_logical_date(run.logical_date), _state(run.state), escape(run.run_id))
    return table


def _print_run_summary(result: RunResult) -> None:
    from rich.table import Table

    from sandbox.core.dates import format_logical_date

    out = console.out
    table = Table(title_justify="left")
    for column in ("task", "state", "tries", "duration"):
        table.add_column(column, justify="right" if column in ("tries", "duration") else "left")
    for task in result.tasks:
        table.add_row(escape(task.task), _state(task.state), str(task.tries), _seconds(task.duration_s))
    out.print(table)
    for task in result.tasks:
        if task.log_tail:
            out.print(f"[bold red]log tail of {escape(task.task)} (try {task.tries}):[/]")
            for line in task.log_tail:
                out.print(f"  {escape(line)}", soft_wrap=True)
    verdict = "[green]succeeded[/]" if result.ok else f"[red]{escape(result.state)}[/]"
    rerun = " (rerun)" if result.rerun else ""
    out.print(
        f"{escape(result.dag_id)} {format_logical_date(result.logical_date)}{rerun}: {verdict}"
    )
    out.print(f"run: {escape(result.url)}", soft_wrap=True)


# -- commands ------------------------------------------------------------------------------------
def run_dag(
    ctx: typer.Context,
    dag_id: str = typer.Argument(..., help="The DAG id."),
    date: str = typer.Option(
        ..., "--date", "-d", help="Logical date: YYYY-MM-DD (midnight UTC) or ISO-8601 with offset."
    ),
    conf: str = typer.Option(None, "--conf", help="Run conf as a JSON object."),
    rerun: bool = typer.Option(False, "--rerun", help="Clear an existing run for that date and run it again."),
    logs: bool = typer.Option(True, "--logs/--no-logs", help="Stream pod tasks' logs as they grow."),
    lint: bool = typer.Option(True, "--lint/--no-lint", help="Check the DAG against the ACI rules first."),
    timeout: float = typer.Option(None, "--timeout", min=1, help="Seconds to wait for the run (default from settings)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Trigger one DAG run through the real scheduler and Celery and follow it to the end."""
    from sandbox.core.dates import format_logical_date, parse_logical_date
    from rich.live import Live

    from sandbox.core.lineage import trigger_note
    from sandbox.core.runs import RunRequest
    from sandbox.core.runs import run_dag as core_run_dag

    settings = ctx.obj.settings()
    request = RunRequest(
        dag_id=dag_id,
        logical_date=parse_logical_date(date),
        conf=_parse_conf(conf),
        rerun=rerun,
        logs=logs,
        timeout=timeout,
        note=trigger_note(settings),
    )
    _require_api(ctx)  # a stopped sandbox fails now, not after the lint
    if lint:
        with ctx.obj.reporter().step(f"lint {dag_id}"):
            _lint(settings, dag_id)
    started = time.monotonic()
    with ctx.obj.adapters().airflow() as api, Live(console=console.err, refresh_per_second=4, transient=True) as live:
        live.update(f"waiting for {escape(dag_id)} to be parsed…")

        def on_started(run: DagRun, was_rerun: bool) -> None:
            action = "cleared and re-running" if was_rerun else "triggered"
            live.console.print(
                f"{action} {escape(run.dag_id)} {format_logical_date(request.logical_date)}: "
                f"{escape(run.run_id)}"
            )

        def on_log(task: str, line: str) -> None:
            live.console.print(f"[dim]{escape(task)} |[/] {escape(line)}", soft_wrap=True)

        result = core_run_dag(
            api,
            settings,
            request,
            on_started=on_started,
            on_update=lambda snapshot: live.update(run_table(snapshot)),
            on_log=on_log,
            on_note=lambda message: live.console.print(f"[yellow]note:[/] {escape(message)}"),
        )
    if as_json:
        console.out.print_json(json.dumps({**result.to_json(), "elapsed_s": round(time.monotonic() - started, 2)}))
    else:
        _print_run_summary(result)
    if not result.ok:
        raise typer.Exit(1)


def backfill(
    ctx: typer.Context,
    dag_id: str = typer.Argument(..., help="The DAG id."),
    start: str = typer.Option(..., "--start", help="First logical date (inclusive)."),
    end: str = typer.Option(..., "--end", help="Last logical date (inclusive)."),
    max_active_runs: int = typer.Option(2, "--max-active-runs", min=1, help="Runs at once."),
    rerun_failed: bool = typer.Option(False, "--rerun-failed", help="Also re-run dates whose run failed."),
    conf: str = typer.Option(None, "--conf", help="Run conf (JSON object) for every run."),
    timeout: float = typer.Option(None, "--timeout", min=1, help="Seconds to wait for the backfill."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Run a DAG over a date range with Airflow's backfill, a row per logical date."""
    from sandbox.core.dates import parse_logical_date
    from rich.live import Live

    from sandbox.core.lineage import trigger_note
    from sandbox.core.runs import BackfillRequest
    from sandbox.core.runs import backfill as core_backfill

    settings = ctx.obj.settings()
    request = BackfillRequest(
        dag_id=dag_id,
        start=parse_logical_date(start, option="--start"),
        end=parse_logical_date(end, option="--end"),
        max_active_runs=max_active_runs,
        rerun_failed=rerun_failed,
        conf=_parse_conf(conf),
        timeout=timeout,
        note=trigger_note(settings),
    )
    with ctx.obj.adapters().airflow() as api, Live(console=console.err, refresh_per_second=4, transient=True) as live:
        live.update(f"waiting for {escape(dag_id)} to be parsed…")
        result = core_backfill(
            api,
            settings,
            request,
            on_started=lambda bf: live.console.print(f"backfill {bf.id} of {escape(bf.dag_id)} created"),
            on_update=lambda snapshot: live.update(backfill_table(snapshot)),
        )
    if as_json:
        console.out.print_json(json.dumps(result.to_json()))
    else:
        _print_backfill_summary(result)
    if not result.ok:
        raise typer.Exit(1)


def _print_backfill_summary(result: BackfillResult) -> None:
    from rich.table import Table

    from sandbox.core.dates import format_logical_date

    table = Table(title_justify="left")
    for column in ("logical date", "state", "duration"):
        table.add_column(column)
    for run in result.runs:
        table.add_row(format_logical_date(run.logical_date), _state(run.state), _seconds(run.duration_s))
    console.out.print(table)
    good = sum(r.state == "success" for r in result.runs)
    verdict = "[green]succeeded[/]" if result.ok else "[red]failed[/]"
    console.out.print(f"{escape(result.dag_id)}: {good}/{len(result.runs)} runs succeeded — {verdict}")
    console.out.print(f"runs: {escape(result.url)}", soft_wrap=True)


def dags(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """DAGs Airflow knows: paused or not, last run, and files that fail to import."""
    from sandbox.core.runs import dags_report

    with ctx.obj.adapters().airflow() as api:
        report = dags_report(api)
    if as_json:
        console.out.print_json(json.dumps(report.to_json()))
        return
    _print_dags(report)


def _print_dags(report: DagsReport) -> None:
    from rich.table import Table

    from sandbox.core.dates import format_logical_date

    table = Table(title_justify="left")
    for column in ("dag", "paused", "schedule", "last run", "logical date"):
        table.add_column(column)
    for dag in report.dags:
        table.add_row(
            escape(dag.dag_id) + (" [red](import error)[/]" if dag.has_import_errors else ""),
            "yes" if dag.paused else "no",
            escape(dag.schedule or "-"),
            _state(dag.last_run_state) if dag.last_run_state else "-",
            format_logical_date(dag.last_run_date),
        )
    console.out.print(table)
    for error in report.import_errors:
        console.out.print(f"[bold red]import error in {escape(error.filename)}:[/]")
        console.out.print(escape(error.stack_trace.rstrip()), soft_wrap=True)


def run_task(
    ctx: typer.Context,
    dag_id: str = typer.Argument(..., help="The DAG id."),
    task_id: str = typer.Argument(..., help="The task id."),
    date: str = typer.Option(..., "--date", "-d", help="Logical date: YYYY-MM-DD (midnight UTC) or ISO-8601."),
    lint: bool = typer.Option(True, "--lint/--no-lint", help="Check the DAG against the ACI rules first."),
    fresh: bool = typer.Option(
        False, "--fresh", help="Always Airflow's `tasks test` (a run of its own), even when a finished run of that date exists."
    ),
) -> None:
    """Run one task of a DAG for real, without the rest of the DAG (a pod task as a pod on the
    virtual node); its log here; exit 0 when it succeeded, 1 when it failed. When a finished run
    of that date exists (and the task's upstream tasks succeeded there), the task runs again in
    it through the scheduler and Celery, as `clear --task` does; otherwise with `tasks test`."""
    import sys

    from sandbox.cli.ops import _print_clear, clear_live
    from sandbox.core import stack
    from sandbox.core.dates import format_logical_date, parse_logical_date
    from sandbox.core.ops import ClearRequest, require_tasks
    from sandbox.core.run_task import run_to_reuse, runner_argv
    from sandbox.core.runs import wait_parsed

    logical_date = parse_logical_date(date)
    when = format_logical_date(logical_date)
    settings = ctx.obj.settings()
    _require_api(ctx)
    if lint:
        with ctx.obj.reporter().step(f"lint {dag_id}"):
            _lint(settings, dag_id)
    with ctx.obj.adapters().airflow() as api:
        wait_parsed(api, settings, dag_id)  # an import error is reported as run-dag reports it
        require_tasks(api, dag_id, [task_id])
        run = None if fresh else run_to_reuse(api, dag_id, task_id, logical_date)
        if run is not None:
            console.err.print(
                f"{escape(dag_id)}.{escape(task_id)} again in its run of {when} ({escape(run.run_id)}), through the "
                "scheduler and Celery (--fresh: a run of its own with `airflow tasks test`)", soft_wrap=True,
            )
            request = ClearRequest(dag_id=dag_id, start=logical_date, end=logical_date, task_ids=(task_id,))
            result = clear_live(api, settings, request)
    if run is not None:
        _print_clear(result)
        # the task's own end decides, not the run's: tasks after it keep the state they had
        states = sorted({s.state or "none" for r in result.runs for s in r.tasks if s.task.split("[")[0] == task_id})
        console.err.print(f"sandbox run-task: {escape(dag_id)}.{escape(task_id)} {when}: {', '.join(states) or 'not run'}")
        raise typer.Exit(0 if states == ["success"] else 1)
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    sys.exit(stack.airflow_exec(settings, runner_argv(dag_id, task_id, when), ctx.obj.adapters(), tty=tty))


def register(app: typer.Typer) -> None:
    app.command("run-dag")(run_dag)
    app.command("run-task")(run_task)
    app.command("backfill")(backfill)
    app.command("dags")(dags)
