"""`sandbox build`, `load`, `images`, `prune`: task images tagged by content."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import typer

from sandbox.cli import console
from sandbox.cli.console import escape
from sandbox.errors import UsageError

if TYPE_CHECKING:
    from sandbox.config import Settings
    from sandbox.core.wiring import Adapters

NAMES = typer.Argument(None, help="Task image names (folder names); default: all.", show_default=False)
BUILD_ARGS = typer.Option(
    None, "--build-arg", help="KEY=VALUE passed to the build (part of the content tag).",
    show_default=False,
)

AS_JSON = typer.Option(False, "--json", help="Machine-readable output.")


def parse_build_args(values: Sequence[str] | None) -> dict[str, str]:
    args: dict[str, str] = {}
    for value in values or ():
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise UsageError(f"--build-arg {value!r} is not KEY=VALUE", hint="e.g. --build-arg BASE_IMAGE=python:3.12-slim")
        args[key] = val
    return args


def _checked(
    ctx: typer.Context, names: Sequence[str] | None, build_arg: Sequence[str] | None
) -> tuple[Settings, dict[str, str], Adapters]:
    """What every image command starts from: settings, its --build-arg values and the adapters.
    Bad input is a usage error before any engine is asked."""
    from sandbox.core import images

    settings = ctx.obj.settings()
    build_args = parse_build_args(build_arg)
    images.select(images.discover(settings), names or None)
    return settings, build_args, ctx.obj.adapters()


def human_size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def build(
    ctx: typer.Context,
    names: list[str] = NAMES,
    build_arg: list[str] = BUILD_ARGS,
) -> None:
    """Build task images whose sources changed (tag = hash of the build context)."""
    from sandbox.core import images

    settings, build_args, adapters = _checked(ctx, names, build_arg)
    results = images.build(settings, ctx.obj.reporter(), adapters.images, names or None, build_args=build_args)
    for result in results:
        verb = f"built in {result.seconds:.1f}s" if result.built else "up to date"
        console.out.print(f"{result.ref}  {verb}")


def load(
    ctx: typer.Context,
    names: list[str] = NAMES,
    build_arg: list[str] = BUILD_ARGS,
) -> None:
    """Load built task images into the kind nodes that lack them."""
    from sandbox.core import images

    settings, build_args, adapters = _checked(ctx, names, build_arg)
    results = images.load(
        settings, ctx.obj.reporter(), adapters.images, adapters.kind(), names or None, build_args=build_args
    )
    for result in results:
        if result.loaded_into:
            how = " (from an archive)" if result.via_archive else ""
            console.out.print(f"{result.ref}  loaded into {', '.join(result.loaded_into)}{how}")
        else:
            console.out.print(f"{result.ref}  already on every node")


def list_images(
    ctx: typer.Context,
    names: list[str] = NAMES,
    as_json: bool = AS_JSON,
    build_arg: list[str] = BUILD_ARGS,
) -> None:
    """Task images: name, tag, size, built at, and the nodes holding them."""
    from sandbox.core import images

    settings, build_args, adapters = _checked(ctx, names, build_arg)
    rows = images.image_status(settings, adapters.images, adapters.optional_kind(), names or None, build_args=build_args)
    if as_json:
        console.out.print_json(json.dumps([row.to_json() for row in rows]))
        return
    from rich.table import Table

    table = Table("name", "tag", "size", "built at", "nodes", box=None, pad_edge=False)
    for row in rows:
        nodes = "(no cluster)" if row.nodes is None else ", ".join(row.nodes) or "none"
        built_at = (row.created or "")[:19].replace("T", " ") if row.built else "not built"
        table.add_row(row.name, row.ref.partition(":")[2], human_size(row.size), built_at, nodes)
    console.out.print(table)


def prune(
    ctx: typer.Context,
    names: list[str] = NAMES,
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would go; remove nothing."),
    as_json: bool = AS_JSON,
    build_arg: list[str] = BUILD_ARGS,
) -> None:
    """Remove superseded task image tags from the engine and the kind nodes (current tags stay)."""
    from sandbox.core import images

    settings, build_args, adapters = _checked(ctx, names, build_arg)
    result = images.prune(
        settings, ctx.obj.reporter(), adapters.images, adapters.optional_kind(), names or None,
        build_args=build_args, dry_run=dry_run,
    )
    if as_json:
        console.out.print_json(json.dumps(result.to_json()))
        return
    verb = "would remove" if dry_run else "removed"
    console.out.print(f"engine: {verb} {', '.join(result.engine) or 'nothing'}")
    for node, refs in (result.nodes or {}).items():
        console.out.print(f"{node}: {verb} {', '.join(refs) or 'nothing'}")
    console.out.print(f"kept: {', '.join(result.kept)}")


def watch(ctx: typer.Context) -> None:
    """Rebuild a task image when a file under its folder is saved (content tag), load it into the
    nodes that lack it, update the DAG record; show DAG import errors as they happen. Ctrl-C stops."""
    from sandbox.core import images
    from sandbox.core.stack_files import read_mode
    from sandbox.core.watch import ImportErrorWatcher
    from sandbox.core.watch import watch as core_watch
    from sandbox.state import StateDir

    settings, _, adapters = _checked(ctx, None, None)
    reporter = ctx.obj.reporter()
    state = StateDir(settings.state_dir)

    def rebuild(names: list[str]) -> None:
        if read_mode(state) == "full":  # recorded once loaded; without a cluster: build and record
            images.build_and_load(settings, reporter, client=adapters.images, kind=adapters.kind(), names=names)
        else:
            images.build(settings, reporter, adapters.images, names)
        for name, entry in sorted(images.read_dag_record(settings).items()):
            if name in names:
                console.out.print(f"{escape(str(entry.get('image')))}  ready: the next run of a DAG using {name} runs it")

    adapters.images  # noqa: B018 - connect to the engine now: the first save then pays only its build
    api = adapters.airflow() if state.secrets_file.exists() else None
    errors = ImportErrorWatcher(lambda: {e.filename: e.stack_trace for e in api.import_errors()}) if api else None
    try:
        core_watch(
            settings, reporter, rebuild, import_errors=errors,
            on_import_error=lambda file, text: console.err.print(
                f"[red]✗ import error[/] {escape(file)}:\n{escape(text.rstrip())}", highlight=False, soft_wrap=True
            ),
            on_fixed=lambda file: console.err.print(f"[green]✓[/] {escape(file)} imports again", soft_wrap=True),
        )
    except KeyboardInterrupt:
        console.err.print("stopped watching")
    finally:
        if api is not None:
            api.close()


def register(app: typer.Typer) -> None:
    app.command("watch")(watch)
    app.command("build")(build)
    app.command("load")(load)
    app.command("images")(list_images)
    app.command("prune")(prune)
