"""Root command: global options, command registration, and the one place errors become messages.

Heavy libraries (airflow, kubernetes, docker) are imported inside the commands that need them,
so `sandbox --help` stays fast.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from sandbox.cli import console
from sandbox.errors import SandboxError

app = typer.Typer(
    name="sandbox",
    help="A local AKS-like Airflow sandbox: kind + simulated virtual node + Airflow 3 on Celery.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


@dataclass
class CliContext:
    project_dir: Path | None
    verbose: bool
    debug: bool
    _cache: dict[tuple[tuple[str, Any], ...], Any] = field(default_factory=dict)

    def settings(self, **overrides: Any):  # -> sandbox.config.Settings
        from sandbox.config import load_settings

        key = tuple(sorted(overrides.items()))
        if key not in self._cache:
            self._cache[key] = load_settings(self.project_dir, overrides=overrides)
        return self._cache[key]

    def reporter(self):  # -> RichReporter
        return console.RichReporter(verbose=self.verbose)


@app.callback()
def root(
    ctx: typer.Context,
    project_dir: Path = typer.Option(
        None, "--project-dir", "-C", help="Project folder (default: nearest with kind-config.yaml)."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Print every external command."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
) -> None:
    if project_dir is not None and not project_dir.is_dir():
        from sandbox.errors import UsageError

        what = "is not a folder" if project_dir.exists() else "does not exist"
        raise UsageError(f"project folder {project_dir} {what}", hint="pass the folder holding kind-config.yaml or sandbox.toml to -C")
    ctx.obj = CliContext(project_dir=project_dir, verbose=verbose, debug=debug)
    console.enable_command_log(verbose)


def _register() -> None:
    from sandbox.cli import images, lint, runs, stack

    for module in (stack, runs, lint, images):
        module.register(app)


_register()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: exit 0 ok, 1 failure, 2 usage error, 130 interrupted.

    Typer (standalone mode) reports usage errors itself with exit 2 and turns Ctrl-C into a
    silent exit 130; every SandboxError raised below the CLI arrives here and becomes one red
    line plus a hint.
    """
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        app(args=argv)
    except SandboxError as exc:
        if debug:
            console.err.print_exception()
        console.error(exc.message, exc.hint)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _interrupted()
    except OSError as exc:  # a path the sandbox cannot read or write: one line, not a traceback
        if debug:
            console.err.print_exception()
        where = f": {exc.filename}" if exc.filename else ""
        console.error(
            f"{exc.strerror or exc}{where}",
            "check that path's permissions: the sandbox reads and writes the project folder and its .sandbox/",
        )
        sys.exit(1)
    except SystemExit as exc:
        if exc.code == 130 and _caused_by_interrupt(exc):
            _interrupted()
        raise


def _interrupted() -> None:
    console.error("interrupted; nothing was lost — run the same command again to resume")
    sys.exit(130)


def _caused_by_interrupt(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
