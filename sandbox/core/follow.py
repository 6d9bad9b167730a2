"""Follow runs until they finish: poll run + task instances (+ pod-task log chunks).

One loop for `run-dag` (one run, a row per task) and `backfill` (a row per logical date). The
caller gets each snapshot through a callback and renders it; this module knows no UI.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from sandbox.adapters.airflow_api import AirflowApi, Backfill, DagRun, TaskInstance
from sandbox.errors import AirflowApiError, StackError
from sandbox.waiting import NotReady, wait_until

POLL_INTERVAL_S = 0.5


def run_poll_interval(elapsed: float) -> float:
    """Every 0.2 s for a run's first 10 s, then 0.5 s, then 1 s after two minutes; a poll is two
    local API calls (~20 ms). With 0.5 s throughout, a short DAG's end was seen up to 0.5 s late:
    benchmarks/run_dag_overhead.py, warm 3-task no-op run-dag, median 2.10 s -> 1.95 s
    (--no-lint 2.08 s -> 1.67 s) on the native stack, 2 cores."""
    return 0.2 if elapsed < 10 else POLL_INTERVAL_S if elapsed < 120 else 1.0


LOG_TAIL_LINES = 25
# How long the API may fail (5xx, or not answering) while a run is followed before that is the
# answer: Postgres restarting answers "500 Database error" for a few seconds, the api-server
# restarting refuses connections; a stopped sandbox is reported after this, not at the timeout.
API_OUTAGE_S = 60.0

T = TypeVar("T")


def tolerating_outages(
    check: Callable[[], T], *, grace: float = API_OUTAGE_S, clock: Callable[[], float] = time.monotonic
) -> Callable[[], T]:
    """`check`, with an API that fails for less than `grace` seconds in a row read as 'not yet'."""
    since: float | None = None

    def guarded() -> T:
        nonlocal since
        try:
            result = check()
        except NotReady:
            since = None
            raise
        except (AirflowApiError, StackError) as exc:
            if isinstance(exc, AirflowApiError) and exc.status < 500:
                raise
            now = clock()
            since = now if since is None else since
            if now - since >= grace:
                raise
            raise NotReady(f"the Airflow API failed, asking again: {exc.message}") from exc
        since = None
        return result

    return guarded


@dataclass(frozen=True)
class RunSnapshot:
    run: DagRun
    tasks: tuple[TaskInstance, ...]

    @property
    def progress(self) -> str:
        done = sum(t.finished for t in self.tasks)
        return f"run {self.run.state}, {done}/{len(self.tasks)} tasks finished"


@dataclass(frozen=True)
class BackfillSnapshot:
    backfill: Backfill
    runs: tuple[DagRun, ...]

    @property
    def finished(self) -> bool:
        """All runs in the range finished. Not `completed_at` alone: the scheduler sets it on
        a fixed 30 s timer, while the runs exist from the moment the backfill is created."""
        if not self.runs:
            return self.backfill.completed_at is not None
        return all(r.finished for r in self.runs)

    @property
    def progress(self) -> str:
        done = sum(r.finished for r in self.runs)
        return f"{done}/{len(self.runs)} runs finished"


class LogSink(Protocol):
    def __call__(self, task_key: str, line: str) -> None: ...


@dataclass
class _LogCursor:
    try_number: int
    token: str | None = None
    complete: bool = False
    last_stamp: str = ""  # the token's position shifts when a finished log moves from the
    # worker's log server to the stored file (its preamble is one entry shorter): entries at or
    # before the last one shown are skipped instead of shown twice


@dataclass
class LogStreamer:
    """Streams the logs of pod tasks as they grow, one continuation token per task try."""

    api: AirflowApi
    dag_id: str
    run_id: str
    sink: LogSink
    wanted: Callable[[TaskInstance], bool] = lambda ti: ti.runs_in_a_pod
    cursors: dict[str, _LogCursor] = field(default_factory=dict)

    def poll(self, tasks: tuple[TaskInstance, ...]) -> None:
        for ti in tasks:
            if not self.wanted(ti) or ti.state in (None, "scheduled", "queued") or ti.try_number < 1:
                continue
            cursor = self.cursors.get(ti.key)
            if cursor is None or cursor.try_number != ti.try_number:
                cursor = self.cursors[ti.key] = _LogCursor(ti.try_number)
            if cursor.complete:
                continue
            try:
                chunk = self.api.task_log(
                    self.dag_id, self.run_id, ti.task_id, ti.try_number,
                    map_index=ti.map_index, token=cursor.token,
                )
            except AirflowApiError:
                continue  # the log is not there yet (the pod is still being created)
            for entry in chunk.entries:
                if entry.stamp and entry.stamp <= cursor.last_stamp:
                    continue
                for line in entry.lines:
                    self.sink(ti.key, line)
                cursor.last_stamp = max(cursor.last_stamp, entry.stamp)
            cursor.token = chunk.token or cursor.token
            cursor.complete = ti.finished and chunk.token is None


def follow_run(
    api: AirflowApi,
    run: DagRun,
    *,
    timeout: float,
    on_update: Callable[[RunSnapshot], None],
    on_log: LogSink | None = None,
    interval: float | Callable[[float], float] = run_poll_interval,
) -> RunSnapshot:
    """Poll until the run finishes; every poll's snapshot goes to `on_update`."""
    streamer = LogStreamer(api, run.dag_id, run.run_id, on_log) if on_log else None

    def check() -> RunSnapshot:
        current = api.get_run(run.dag_id, run.run_id)
        snapshot = RunSnapshot(current, tuple(api.task_instances(run.dag_id, run.run_id)))
        if streamer is not None:
            streamer.poll(snapshot.tasks)
        on_update(snapshot)
        if not current.finished:
            raise NotReady(snapshot.progress)
        return snapshot

    final = wait_until(
        tolerating_outages(check),
        what=f"run {run.run_id} of {run.dag_id} to finish",
        timeout=timeout,
        interval=interval,
        hint="raise --timeout, or look at the run in the Airflow UI",
    )
    if streamer is not None:  # drain what the last poll did not reach
        streamer.poll(final.tasks)
    return final


def follow_backfill(
    api: AirflowApi,
    backfill: Backfill,
    *,
    timeout: float,
    on_update: Callable[[BackfillSnapshot], None],
    interval: float = POLL_INTERVAL_S,
) -> BackfillSnapshot:
    """Poll the backfill and its runs (by logical date) until all are finished."""

    def check() -> BackfillSnapshot:
        current = api.get_backfill(backfill.id)
        runs = api.list_runs(backfill.dag_id, start=backfill.from_date, end=backfill.to_date)
        snapshot = BackfillSnapshot(current, tuple(runs))
        on_update(snapshot)
        if not snapshot.finished:
            raise NotReady(snapshot.progress)
        return snapshot

    return wait_until(
        tolerating_outages(check),
        what=f"backfill {backfill.id} of {backfill.dag_id} to finish",
        timeout=timeout,
        interval=interval,
        hint="raise --timeout, or look at the backfill in the Airflow UI",
    )


def log_tail(api: AirflowApi, run: DagRun, ti: TaskInstance, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last lines of a task's latest try (empty when the log cannot be read)."""
    if ti.try_number < 1:
        return []
    try:
        chunk = api.task_log(run.dag_id, run.run_id, ti.task_id, ti.try_number, map_index=ti.map_index)
    except AirflowApiError:
        return []
    return list(chunk.lines[-lines:])
