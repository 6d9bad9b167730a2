"""How the core reports progress without importing any UI: the CLI passes a Reporter in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol


class Reporter(Protocol):
    def step(self, name: str) -> AbstractContextManager[None]:
        """A long step: shown with a spinner and elapsed time while it runs."""
        ...

    def info(self, message: str) -> None:
        """A line worth showing the user (a decision made, a thing skipped)."""
        ...

    def output(self, line: str) -> None:
        """A line of an external command's output, streamed during a long step."""
        ...


class SilentReporter:
    """For tests and `--json`: records what would have been shown."""

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.messages: list[str] = []
        self.lines: list[str] = []

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.steps.append(name)
        yield

    def info(self, message: str) -> None:
        self.messages.append(message)

    def output(self, line: str) -> None:
        self.lines.append(line)
