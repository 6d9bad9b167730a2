"""Root command: global options, command registration, and the one place errors become messages.

Every library beyond typer and rich's console (airflow, kubernetes, docker, rich's tables and
live display) is imported inside the command that needs it, so `sandbox --help` stays fast
(benchmarks/startup.py).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from sandbox.cli import console
from sandbox.errors import SandboxError

if TYPE_CHECKING:
    from sandbox.config import Settings
    from sandbox.core.wiring import Adapters

app = typer.Typer(
    name="sandbox",
    help="A local AKS-like Airflow sandbox: kind + simulated virtual node + Airflow 3 on Celery.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: typer's rich help loads rich.markdown and rich.traceback
)


# Commands that need no project folder (lint says which kind config it used instead).
PROJECT_FREE = frozenset({"lint", "doctor", "init"})


@dataclass
class CliContext:
    project_dir: Path | None
    verbose: bool
    debug: bool
    command: str | None = None
    _settings: dict[tuple[tuple[str, Any], ...], Settings] = field(default_factory=dict)
    _adapters: Adapters | None = None
    _announced: bool = False

    def settings(self, **overrides: Any) -> Settings:
        """The settings of the project this command acts on: -C, SANDBOX_PROJECT_DIR, or the
        nearest project folder at or above the current one. Outside any project, commands that act
        on a sandbox refuse with the `sandbox init` hint; when the project is not the current
        folder, the folder is named once on stderr."""
        import os

        from sandbox.config import find_project_dir, load_settings
        from sandbox.errors import UsageError

        explicit = self.project_dir is not None or bool(os.environ.get("SANDBOX_PROJECT_DIR"))
        if not explicit and self.command not in PROJECT_FREE and find_project_dir(Path.cwd()) is None:
            raise UsageError(
                f"no sandbox project in {Path.cwd()} or any folder above it (no sandbox.toml, kind-config.yaml "
                "or [tool.sandbox] in pyproject.toml)",
                hint="run `sandbox init` to make this folder a project, or pass the project folder with -C DIR",
            )
        key = tuple(sorted(overrides.items()))
        if key not in self._settings:
            self._settings[key] = load_settings(self.project_dir, overrides=overrides)
        settings = self._settings[key]
        # Found by walking up from a subfolder: say which project. Named with -C or
        # SANDBOX_PROJECT_DIR: the user knows, and error output stays one line.
        if not explicit and not self._announced and settings.project_dir != Path.cwd().resolve():
            console.err.print(f"[dim]project: {settings.project_dir}[/]", soft_wrap=True)
            self._announced = True
        return settings

    def adapters(self) -> Adapters:
        """The command's external systems: built here, once, and nowhere else."""
        if self._adapters is None:
            from sandbox.core.wiring import Adapters

            self._adapters = Adapters(self.settings())
        return self._adapters

    def reporter(self) -> console.RichReporter:
        return console.RichReporter(verbose=self.verbose)


@app.callback()
def root(
    ctx: typer.Context,
    project_dir: Path = typer.Option(
        None, "--project-dir", "-C", help="Project folder (default: the nearest at or above the current one with sandbox.toml or kind-config.yaml)."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Print every external command."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
) -> None:
    if project_dir is not None and not project_dir.is_dir():
        from sandbox.errors import UsageError

        what = "is not a folder" if project_dir.exists() else "does not exist"
        raise UsageError(f"project folder {project_dir} {what}", hint="pass the folder holding kind-config.yaml or sandbox.toml to -C")
    ctx.obj = CliContext(project_dir=project_dir, verbose=verbose, debug=debug, command=ctx.invoked_subcommand)
    console.enable_command_log(verbose)


def _register() -> None:
    from sandbox.cli import images, lineage, lint, ops, project, runs, stack

    for module in (project, stack, runs, ops, lineage, lint, images):
        module.register(app)


_register()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: exit 0 ok, 1 failure, 2 usage error, 130 interrupted.

    Click runs in non-standalone mode, so its usage errors (a missing argument, a bad option
    value) arrive here too and read like ours: one `error:` line and a hint, exit 2. Every
    SandboxError raised below the CLI becomes one red line plus a hint.
    """
    from typer.exceptions import Abort, TyperException

    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        code = app(args=argv, standalone_mode=False)
        if code == 130:  # Typer's answer to Ctrl-C (`sandbox airflow` exits with sys.exit instead)
            _interrupted()
        sys.exit(code if isinstance(code, int) else 0)
    except TyperException as exc:  # click's usage errors, as Typer re-exports them
        _usage_error(exc)
    except Abort as exc:
        if _caused_by_interrupt(exc):
            _interrupted()
        console.error("aborted")
        sys.exit(1)
    except SandboxError as exc:
        if debug:
            console.err.print_exception()
        console.error(exc.message, exc.hint)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _interrupted()
    except OSError as exc:  # a path it cannot use, or a connection that broke: one line
        if debug:
            console.err.print_exception()
        if exc.filename:
            console.error(
                f"{exc.strerror or exc}: {exc.filename}",
                "check that path's permissions: the sandbox reads and writes the project folder and its .sandbox/",
            )
        else:  # the docker SDK's and HTTP clients' errors are OSErrors too
            console.error(str(exc) or type(exc).__name__, "is the container engine running? `sandbox doctor` checks")
        sys.exit(1)
    except SystemExit as exc:
        if exc.code == 130 and _caused_by_interrupt(exc):
            _interrupted()
        raise


def _usage_error(exc: Exception) -> None:
    """A missing argument, an unknown option, a bad value: one line, a hint, exit 2."""
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError":  # bare `sandbox`: the help, as --help prints it
        if ctx is not None:
            print(ctx.get_help())
        sys.exit(0)
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    where = ctx.command_path if ctx is not None else "sandbox"
    console.error(message, f"see `{where} --help`")
    sys.exit(int(getattr(exc, "exit_code", 2)))


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
