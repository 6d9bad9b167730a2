"""`up`, `down`, `status`, `logs`, `doctor`, `kubeconfig`: parse options, call sandbox.core, render."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer

from sandbox.cli import console
from sandbox.cli.console import escape
from sandbox.errors import SandboxError, UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from sandbox.config import Settings
    from sandbox.core.stack_status import StackStatus

_MARK = {"ok": "[green]✓[/]", "warn": "[yellow]![/]", "skip": "[dim]-[/]", "fail": "[red]✗[/]"}


def register(app: typer.Typer) -> None:
    app.command("up")(up)
    app.command("down")(down)
    app.command("status")(status)
    app.command("logs")(logs)
    passthrough = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}
    app.command("airflow", context_settings=passthrough)(airflow)  # `--help` goes to airflow
    app.command("doctor")(doctor)
    app.command("kubeconfig")(kubeconfig)


def up(
    ctx: typer.Context,
    stack_only: bool = typer.Option(
        False, "--stack-only", help="Only Airflow, RabbitMQ, Postgres and Azurite: no kind cluster, no task images."
    ),
) -> None:
    """Bring the sandbox up (or verify it is up): cluster, virtual node, Airflow stack, images."""
    from sandbox.core import stack

    settings = ctx.obj.settings()
    result = stack.up(settings, ctx.obj.reporter(), ctx.obj.adapters(), stack_only=stack_only)
    out = console.out
    out.print(f"[bold green]sandbox is up[/] ({result.mode})")
    out.print(f"  Airflow UI   {result.url}")
    out.print(f"  login        {result.user} / {result.password}")
    if result.mode == "full":
        from sandbox.state import StateDir

        out.print(f"  kubeconfig   {StateDir(settings.state_dir).admin_kubeconfig}  (cluster admin; `sandbox kubeconfig`)")
    else:
        out.print("  no cluster: tasks that launch pods fail at once (run `sandbox up` for the cluster)")


def down(
    ctx: typer.Context,
    purge: bool = typer.Option(False, "--purge", help="Also remove volumes (the Airflow database) and the state dir."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before --purge."),
) -> None:
    """Stop the sandbox, keeping the database volume, images and state (unless --purge)."""
    from sandbox.core import stack

    settings = ctx.obj.settings()
    if purge and not yes:
        question = f"Remove the cluster, containers, the Airflow database volume and {settings.state_dir}?"
        try:
            agreed = typer.confirm(question, default=False, err=True)
        except typer.Abort as exc:  # Ctrl-C, or no answer: stdin closed (CI, a pipe)
            if isinstance(exc.__context__ or exc.__cause__, KeyboardInterrupt):
                raise KeyboardInterrupt from None
            raise UsageError("--purge asks before removing data and got no answer", hint="add --yes") from None
        if not agreed:
            raise UsageError("nothing removed", hint="`sandbox down` (without --purge) keeps your data")
    result = stack.down(settings, ctx.obj.reporter(), ctx.obj.adapters(), purge=purge)
    what = ", ".join(result.removed) or "nothing was running"
    console.out.print(f"[bold]sandbox is down[/]: removed {what}")
    if not purge:
        console.out.print("  kept: the database volume, built images and .sandbox/ (`sandbox up` resumes)")


def status(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Every component's health; exits 1 when anything is unhealthy."""
    from sandbox.core.stack_status import status as stack_status

    settings = ctx.obj.settings()
    result = stack_status(settings, ctx.obj.adapters())
    if as_json:
        console.out.print_json(json.dumps({
            **result.to_json(), **_caps_json(settings),
            "project": str(settings.project_dir), "files": settings.file_sources(),
        }))
    else:
        console.out.print(f"[bold]project[/]   {settings.project_dir}", soft_wrap=True)
        for what, source in settings.file_sources().items():
            console.out.print(f"  {what}: {source}", soft_wrap=True, markup=False)
        _render_status(result, settings, console.out)
    if not result.healthy:
        raise typer.Exit(1)


def _caps_json(settings: Settings) -> dict[str, Any]:
    """The concurrency caps Airflow runs with and the virtual node's budget (from settings:
    airflow_env() renders the former, `up` applies the latter as ResourceQuotas)."""
    return {
        "concurrency": dict(settings.concurrency.items()),
        "virtual_node_quota": dict(settings.virtual_node_quota.items()),
    }


def _render_status(result: StackStatus, settings: Settings, out: Console) -> None:
    from sandbox.core.capacity import describe

    out.print(f"[bold]mode[/]      {result.mode or 'not up'}   runtime: {result.runtime or '-'}")
    if result.cluster is not None:
        cluster = result.cluster
        out.print(f"[bold]cluster[/]   {cluster.name}: {'[green]ok[/]' if cluster.ok else '[red]problem[/]'}")
        for node in cluster.nodes:
            mark = "[green]✓[/]" if node.ready else "[red]✗[/]"
            extra = ""
            if node.is_virtual_node:
                labels = ",".join(f"{k}={v}" for k, v in sorted(node.labels.items()) if not k.startswith("node-role"))
                extra = f"  pods: {node.pods_capacity}  labels: {labels}  taints: {', '.join(node.taints)}"
            out.print(f"  {mark} {node.name} ({node.kind}){extra}", markup=True)
        for note in cluster.notes:
            out.print(f"  note: {note}", markup=False)
    if result.services or result.missing_services:
        out.print("[bold]services[/]")
        for s in result.services:
            ok = s.verdict == "ok"
            detail = s.health or s.state
            if s.state == "exited":
                detail = f"exited ({s.exit_code})"
            out.print(f"  {'[green]✓[/]' if ok else '[red]✗[/]'} {s.service:<22} {detail}")
        for name in result.missing_services:
            out.print(f"  [red]✗[/] {name:<22} not running")
    if result.api is not None:
        parts = ", ".join(f"{k} {v.get('status')}" for k, v in result.api.items() if isinstance(v, dict))
        out.print(f"[bold]airflow[/]   {parts}")
    caps = ", ".join(f"{name} {value}" for name, value in settings.concurrency.items())
    out.print(f"[bold]caps[/]      {caps}")
    if result.cluster is not None:
        out.print(f"[bold]quota[/]     virtual node admits {describe(settings)}")
    out.print(f"[bold]UI[/]        {result.url}   login: {result.user} / {result.password or '(not generated yet)'}")
    if result.dag_import_errors:
        out.print(f"[bold]DAGs[/]      {len(result.dag_import_errors)} file(s) do not import (`sandbox lint` shows why):")
        for file, error in result.dag_import_errors:
            out.print(f"  [red]✗[/] {escape(file)}: {escape(error)}", soft_wrap=True)
    for problem in result.problems:
        out.print(f"[red]✗[/] {problem}", markup=True)
    if result.healthy:
        out.print("[bold green]healthy[/]")


def logs(
    ctx: typer.Context,
    services: list[str] = typer.Argument(None, help="Service(s) to show (default: all)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
    tail: int = typer.Option(None, "--tail", "-n", help="Only the last N lines of each service."),
) -> None:
    """Show the compose services' logs."""
    from sandbox.core import stack

    if tail is not None and tail < 0:
        raise UsageError(f"--tail must be >= 0, got {tail}")
    settings = ctx.obj.settings()

    def show(line: str) -> None:
        console.out.print(line, markup=False, highlight=False, soft_wrap=True)

    stack.logs(settings, services or (), follow=follow, tail=tail, on_line=show, adapters=ctx.obj.adapters())


def airflow(ctx: typer.Context) -> None:
    """Run the airflow CLI in the running scheduler container: `sandbox airflow dags list`."""
    import sys

    from sandbox.core import stack

    if not ctx.args:
        raise UsageError(
            "no airflow command given",
            hint="e.g. `sandbox airflow dags list` or `sandbox airflow tasks test DAG TASK 2021-12-01`",
        )
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    code = stack.airflow_cli(ctx.obj.settings(), list(ctx.args), ctx.obj.adapters(), tty=tty)
    sys.exit(code)  # airflow's own code, 130 included, never reinterpreted as our Ctrl-C


def doctor(
    ctx: typer.Context,
    stack_only: bool = typer.Option(False, "--stack-only", help="Skip the cluster's prerequisites."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Check the prerequisites: container engine, memory, compose, kind, kubectl, ports, disk."""
    from sandbox.core.doctor import examine

    report = examine(ctx.obj.settings(), ctx.obj.adapters(), stack_only=stack_only)
    if as_json:
        console.out.print_json(json.dumps(report.to_json()))
    else:
        for check in report.checks:
            console.out.print(f"{_MARK[check.status]} {check.what}", highlight=False)
            if check.status != "ok":
                if check.why:
                    console.out.print(f"    why: {check.why}", markup=False)
                if check.fix:
                    console.out.print(f"    fix: {check.fix}", markup=False)
    if not report.ok:
        raise typer.Exit(1)


def kubeconfig(ctx: typer.Context) -> None:
    """Print the path of the cluster-admin kubeconfig (your ~/.kube/config is never edited)."""
    from sandbox.state import StateDir

    path = StateDir(ctx.obj.settings().state_dir).admin_kubeconfig
    if not path.exists():
        raise SandboxError(f"no admin kubeconfig at {path}", hint="run `sandbox up` to create the cluster")
    console.out.print(str(path), markup=False, highlight=False, soft_wrap=True)
