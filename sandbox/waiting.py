"""The one wait primitive: poll with a timeout, and fail saying what, last state, and a hint."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from sandbox.errors import WaitTimeout

T = TypeVar("T")


class NotReady(Exception):
    """Raised by a check to say 'not yet', with the state it saw."""

    def __init__(self, state: str) -> None:
        super().__init__(state)
        self.state = state


def wait_until(
    check: Callable[[], T | None],
    *,
    what: str,
    timeout: float,
    interval: float | Callable[[float], float] = 0.5,
    transient: tuple[type[BaseException], ...] = (),
    hint: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call `check` until it returns something other than None/False, then return that.

    `check` raises NotReady(state) to report what it saw; exceptions in `transient` count as
    'not yet' too (their text becomes the last state). Anything else propagates at once.
    `interval` may be a schedule: seconds elapsed -> seconds to the next check (poll fast while
    the answer is likely near, slower after).
    """
    started = clock()
    deadline = started + timeout
    pause = interval if callable(interval) else (lambda elapsed: interval)
    last_state = "no answer yet"
    while True:
        try:
            result = check()
            if result is not None and result is not False:
                return result
            last_state = "not ready"
        except NotReady as exc:
            last_state = exc.state
        except transient as exc:  # type: ignore[misc]
            last_state = f"{type(exc).__name__}: {exc}"
        if clock() >= deadline:
            raise WaitTimeout(
                f"timed out after {timeout:.0f}s waiting for {what}; last state: {last_state}",
                hint=hint,
            )
        now = clock()
        sleep(min(pause(now - started), max(0.0, deadline - now)))
