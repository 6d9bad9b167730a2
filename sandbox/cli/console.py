"""Rich output: one console on stderr for progress and errors, stdout for results.

The consoles are made on first use (`console.err`, `console.out`), so a command that prints
nothing through rich (`--help`) never imports it."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from collections.abc import Callable
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

_consoles: dict[str, Console] = {}


def __getattr__(name: str) -> Any:
    """`err` and `out`, each made once, when first asked for."""
    if name not in ("err", "out"):
        raise AttributeError(name)
    if name not in _consoles:
        from rich.console import Console

        _consoles[name] = Console(stderr=name == "err", highlight=False)
    return _consoles[name]


def escape(text: str) -> str:
    """rich.markup.escape, imported when first needed."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


class RichReporter:
    """Spinner with the step name and elapsed time; the latest streamed line beside it."""

    def __init__(self, console: Console | None = None, *, verbose: bool = False) -> None:
        self.console = console if console is not None else __getattr__("err")
        self.verbose = verbose
        self._show_line: Callable[[str], None] | None = None

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        started = time.monotonic()
        progress = Progress(
            SpinnerColumn(),
            TextColumn(escape(name)),
            TimeElapsedColumn(),
            TextColumn("{task.fields[last]}", markup=False, style="dim"),
            console=self.console,
            transient=True,
        )
        with progress:
            task = progress.add_task(name, last="")
            self._show_line = lambda line: progress.update(task, last=line.strip()[-80:])
            try:
                yield
            except BaseException:
                progress.stop()
                self.console.print(f"[red]✗[/] {escape(name)} ({time.monotonic() - started:.1f}s)")
                raise
            finally:
                self._show_line = None
        self.console.print(f"[green]✓[/] {escape(name)} [dim]({time.monotonic() - started:.1f}s)[/]")

    def info(self, message: str) -> None:
        self.console.print(f"  {escape(message)}")

    def output(self, line: str) -> None:
        if self.verbose:
            self.console.print(f"  [dim]{escape(line)}[/]")
        elif self._show_line is not None:
            self._show_line(line)


def error(message: str, hint: str | None = None) -> None:
    # soft_wrap: tracebacks and command lines stay copy-pasteable when stderr is not a terminal.
    err = __getattr__("err")
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    if hint:
        err.print(f"[yellow]hint:[/] {escape(hint)}", soft_wrap=True)


def enable_command_log(verbose: bool) -> None:
    """With -v, every external command is printed, copy-pasteable, as it runs."""
    if not verbose:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("sandbox.proc", "sandbox.http"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
