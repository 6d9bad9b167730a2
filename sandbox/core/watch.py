"""`sandbox watch`: the inner loop. A saved change under a task image's folder rebuilds that image
(content tag; the engine's layer cache rebuilds only the changed layers), loads it into the kind
nodes that lack it and updates the DAG-folder record, so the next run uses the new code; DAG
import errors are shown as the DAG processor reports them.

Polling, not inotify: the content hash `sandbox build` already computes is the change signal
(a save that changes nothing builds nothing, and .dockerignore'd files never trigger), and it
works the same on every platform and on bind mounts. A burst of saves is one build: a changed
hash must stay the same for `settle` seconds before it is built.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sandbox.config import Settings
from sandbox.core import images
from sandbox.errors import SandboxError
from sandbox.progress import Reporter

# A save is seen within INTERVAL_S and built SETTLE_S after the last write of a burst: an
# editor's save (and format-on-save) or a `git checkout` writes its files within that.
SETTLE_S = 0.3
INTERVAL_S = 0.2


@dataclass
class ImageWatcher:
    """Which task images changed since the last look, once their content has settled."""

    settings: Settings
    settle: float = SETTLE_S
    clock: Callable[[], float] = time.monotonic
    seen: dict[str, str] = field(default_factory=dict)  # name -> hash last built (or tried)
    _pending: dict[str, tuple[str, float]] = field(default_factory=dict)  # name -> (hash, since)

    def __post_init__(self) -> None:
        self.seen = self.hashes()

    def hashes(self) -> dict[str, str]:
        return {p.name: p.context_hash for p in images.plan_selected(self.settings)}

    def settled_changes(self) -> list[str]:
        now = self.clock()
        changed: list[str] = []
        for name, digest in self.hashes().items():
            if self.seen.get(name) == digest:
                self._pending.pop(name, None)
                continue
            pending = self._pending.get(name)
            if pending is None or pending[0] != digest:
                self._pending[name] = (digest, now)  # (still) being edited: wait for quiet
            elif now - pending[1] >= self.settle:
                changed.append(name)
                self.seen[name] = digest  # tried once per content, failed or not
                del self._pending[name]
        return sorted(changed)


@dataclass
class ImportErrorWatcher:
    """New, changed and fixed DAG import errors, from Airflow's API."""

    fetch: Callable[[], dict[str, str]]  # file -> error text
    known: dict[str, str] = field(default_factory=dict)

    def changes(self) -> tuple[dict[str, str], list[str]]:
        current = self.fetch()
        new = {f: text for f, text in current.items() if self.known.get(f) != text}
        fixed = sorted(set(self.known) - set(current))
        self.known = current
        return new, fixed


def watch(
    settings: Settings,
    reporter: Reporter,
    rebuild: Callable[[list[str]], None],
    *,
    import_errors: ImportErrorWatcher | None = None,
    stop: Callable[[], bool] = lambda: False,
    interval: float = INTERVAL_S,
    settle: float = SETTLE_S,
    on_import_error: Callable[[str, str], None] = lambda file, text: None,
    on_fixed: Callable[[str], None] = lambda file: None,
) -> None:
    """Until `stop()`: rebuild settled image changes; report import errors. A failed build or an
    unreachable API is reported and watching goes on."""
    watcher = ImageWatcher(settings, settle=settle)
    reporter.info(f"watching {', '.join(sorted(watcher.seen)) or 'no task images'} (Ctrl-C stops)")
    while not stop():
        try:
            changed = watcher.settled_changes()
            if changed:
                rebuild(changed)
        except SandboxError as exc:
            reporter.info(f"✗ {exc.message}" + (f" — {exc.hint}" if exc.hint else ""))
        if import_errors is not None:
            try:
                new, fixed = import_errors.changes()
            except SandboxError:
                new, fixed = {}, []  # Airflow not (yet) reachable: images still rebuild
            for file, text in sorted(new.items()):
                on_import_error(file, text)
            for file in fixed:
                on_fixed(file)
        time.sleep(interval)
