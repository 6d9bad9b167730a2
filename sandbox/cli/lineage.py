"""`sandbox show`, `sandbox compare`: thin commands over sandbox.core.lineage (`sandbox runs`,
in cli/ops.py, shows each run's headline metrics from the same core).

Results (tables, --json) go to stdout; exit 0, or 2 for bad input (unknown DAG, no such run).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from sandbox.cli import console
from sandbox.cli.console import escape
from sandbox.cli.runs import _seconds, _state
from sandbox.errors import UsageError

if TYPE_CHECKING:
    from sandbox.core.lineage import Comparison, Shown


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def show(
    ctx: typer.Context,
    dag_id: str = typer.Argument(..., help="The DAG id."),
    date: str = typer.Option(..., "--date", "-d", help="Logical date of the run: YYYY-MM-DD or ISO-8601."),
    task: str = typer.Option(None, "--task", "-t", help="Only this task's record."),
    as_json: bool = typer.Option(False, "--json", help="The records as JSON on stdout (the export format)."),
) -> None:
    """The lineage record of a run's tasks, and a command that reruns each step by itself."""
    from sandbox.core.dates import parse_logical_date
    from sandbox.core.lineage import show as core_show
    from sandbox.state import StateDir

    logical_date = parse_logical_date(date)
    settings = ctx.obj.settings()
    kubeconfig = StateDir(settings.state_dir).admin_kubeconfig
    with ctx.obj.adapters().airflow() as api:
        shown = core_show(api, dag_id, logical_date, task=task, kubeconfig=kubeconfig)
    if as_json:
        console.out.print_json(json.dumps(shown.to_json()))
        return
    _print_shown(shown)


def _print_shown(shown: Shown) -> None:
    from sandbox.core.dates import format_logical_date

    out = console.out
    run = shown.run
    out.print(f"[bold]{escape(shown.dag_id)}[/] {format_logical_date(run.logical_date)} · {escape(run.run_id)} · {_state(run.state)}")
    source = shown.source
    if source:
        dirty = " [yellow](dirty: uncommitted changes)[/]" if source["dirty"] else ""
        out.print(f"source: git {escape(source['commit'])}{dirty} of {escape(source['dags_folder'])}")
    else:
        out.print("source: [dim]not recorded (run not triggered by `sandbox run-dag`/`backfill`)[/]")
    out.print(f"conf: {escape(json.dumps(dict(run.conf), sort_keys=True))}")
    if not shown.records:
        out.print("[dim]no task of this run recorded a lineage record[/]")
    for record in shown.records:
        raw = record.raw
        out.print()
        out.print(f"[bold]{escape(record.key)}[/] (try {record.try_number}, {escape(record.kind)})")
        rows: list[tuple[str, Any]] = []
        if record.kind == "pod":
            image, node = record.image, record.node
            container = raw.get("container") or {}
            rows += [
                ("image", image.get("ref")),
                ("image ID (node)", image.get("id") or "not reported"),
                ("node", f"{node.get('name')} ({'virtual node' if node.get('virtual') else 'regular node'})"),
                ("command", json.dumps(container.get("command") or [])),
                ("args", json.dumps(container.get("args") or [])),
                ("exit code", raw.get("exit_code")),
                ("inputs", ", ".join(raw.get("inputs") or []) or "-"),
                ("outputs", ", ".join(raw.get("outputs") or []) or "-"),
            ]
        rows += [
            ("started", raw.get("started_at")),
            ("finished", raw.get("finished_at")),
            ("duration", _seconds(raw.get("duration_s"))),
            ("params", json.dumps(raw.get("params") or {}, sort_keys=True)),
            ("metrics", json.dumps(dict(record.metrics), sort_keys=True)),
        ]
        for warning in raw.get("warnings") or []:
            rows.append(("warning", warning))
        for name, value in rows:
            out.print(f"  {name:<16} {escape(str(value if value is not None else '-'))}", soft_wrap=True)
        out.print("  rerun this step by itself:")
        for line in shown.rerun[record.key].splitlines():
            out.print(f"    {escape(line)}", soft_wrap=True)


def compare(
    ctx: typer.Context,
    dag_id: str = typer.Argument(..., help="The DAG id."),
    metric: str = typer.Option(None, "--metric", "-m", help="Only this metric (default: every numeric one)."),
    last: int = typer.Option(10, "--last", min=1, max=100, help="How many runs, newest first."),
    goal: str = typer.Option(
        None, "--goal", help="min or max: which value is best (default: min for names like rmse/loss/error, else max)."
    ),
    plot: Path = typer.Option(None, "--plot", help="Also draw the metrics over the runs into this PNG file."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Metrics of the last runs side by side, per task; the best value of each metric in bold."""
    from sandbox.core.lineage import compare as core_compare

    if goal not in (None, "min", "max"):
        raise UsageError(f"--goal must be min or max, not {goal!r}")
    if plot is not None and plot.suffix.lower() != ".png":
        raise UsageError(f"--plot {plot}: the file must end in .png", hint="e.g. --plot rmse.png")
    with ctx.obj.adapters().airflow() as api:
        comparison = core_compare(api, dag_id, metric=metric, last=last, goal=goal)
    if plot is not None:
        _plot(comparison, plot)
    if as_json:
        console.out.print_json(json.dumps(comparison.to_json()))
    else:
        _print_comparison(comparison)
    if plot is not None:
        console.err.print(f"plot written to {escape(str(plot))}")


def _print_comparison(comparison: Comparison) -> None:
    from rich.table import Table

    from sandbox.core.dates import format_logical_date

    if not comparison.columns:
        console.out.print(f"no metrics recorded in the last {len(comparison.runs)} runs of {escape(comparison.dag_id)}")
        return
    table = Table(title=f"{escape(comparison.dag_id)} · metrics (best in bold green)", title_justify="left")
    table.add_column("logical date")
    table.add_column("state")
    for task, metric in comparison.columns:
        arrow = "↓" if comparison.goals[metric] == "min" else "↑"
        table.add_column(f"{escape(task)}\n{escape(metric)} {arrow}", justify="right")
    for run in comparison.runs:
        row = comparison.values[run.run_id]
        cells = []
        for column in comparison.columns:
            text = _number(row.get(column))
            if comparison.best.get(column[1]) == (run.run_id, column):
                text = f"[bold green]{text} ★[/]"
            cells.append(text)
        table.add_row(format_logical_date(run.logical_date), _state(run.state), *cells)
    console.out.print(table)


def _plot(comparison: Comparison, path: Path) -> None:
    """matplotlib (the `plot` extra), imported only here: the CLI starts without it."""
    try:
        import matplotlib
    except ImportError:
        raise UsageError(
            "--plot needs matplotlib, which is not installed",
            hint="pip install 'sandbox[plot]' (or `make install`, whose lock includes it)",
        ) from None
    from sandbox.core.lineage import metric_names, plot_series

    matplotlib.use("Agg")  # files only, no display
    from matplotlib import pyplot

    names = metric_names(comparison.columns)
    if not names:
        raise UsageError(f"nothing to plot: no metrics in the last {len(comparison.runs)} runs of {comparison.dag_id!r}")
    figure, axes = pyplot.subplots(len(names), 1, figsize=(8, 3 * len(names)), squeeze=False)
    series = plot_series(comparison)
    for ax, name in zip(axes[:, 0], names, strict=True):
        for label, xs, ys in series:
            if label.endswith(f" · {name}"):
                points = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
                ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label.rsplit(" · ", 1)[0])
        run_id, column = comparison.best[name]
        best_run = next(r for r in comparison.runs if r.run_id == run_id)
        from sandbox.core.dates import format_logical_date

        ax.annotate("best", (format_logical_date(best_run.logical_date), comparison.values[run_id][column]),
                    textcoords="offset points", xytext=(0, 8), ha="center", fontweight="bold")
        ax.set_title(f"{comparison.dag_id}: {name} ({'lower' if comparison.goals[name] == 'min' else 'higher'} is better)")
        ax.legend(fontsize="small")
        ax.tick_params(axis="x", labelrotation=30)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


def register(app: typer.Typer) -> None:
    app.command("show")(show)
    app.command("compare")(compare)
