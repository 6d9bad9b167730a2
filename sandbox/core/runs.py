"""run-dag, backfill and dags: the flows over the Airflow API, no UI.

wait parsed (import errors, unknown ids) -> unpause -> trigger (409: --rerun clears) -> follow
-> result. The CLI passes callbacks for live rendering and turns results into exit codes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sandbox.adapters.airflow_api import (
    AirflowApi,
    Backfill,
    Dag,
    DagRun,
    ImportErrorRecord,
    TaskInstance,
)
from sandbox.config import Settings
from sandbox.core.dates import format_logical_date
from sandbox.core.follow import (
    BackfillSnapshot,
    LogSink,
    RunSnapshot,
    follow_backfill,
    follow_run,
    log_tail,
)
from sandbox.core.lineage import SOURCE_PREFIX
from sandbox.errors import AirflowApiError, DagImportFailed, RunExists, UnknownDag, UsageError, WaitTimeout
from sandbox.waiting import NotReady, wait_until


def run_url(settings: Settings, dag_id: str, run_id: str) -> str:
    return f"{settings.api_url}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


# -- waiting for the DAG ------------------------------------------------------------------------
def _mentions(settings: Settings, dag_id: str) -> list[Path]:
    """Files in the local DAGs folder that name `dag_id`: a DAG the processor may not have seen."""
    folder = settings.dags_folder
    if not folder.is_dir():
        return []
    needles = (f'"{dag_id}"', f"'{dag_id}'")
    return [
        path
        for path in sorted(folder.rglob("*.py"))
        if path.stem == dag_id or any(n in path.read_text(errors="replace") for n in needles)
    ]


def _import_error_for(
    errors: list[ImportErrorRecord], files: list[Path], settings: Settings
) -> ImportErrorRecord | None:
    relative = {str(p.relative_to(settings.dags_folder)) for p in files}
    names = {p.name for p in files}
    for error in errors:
        if error.filename in relative or Path(error.filename).name in names:
            return error
    return None


def _import_failed(dag_id: str, error: ImportErrorRecord) -> DagImportFailed:
    return DagImportFailed(
        f"DAG {dag_id!r} cannot be imported ({error.filename}):\n{error.stack_trace.rstrip()}",
        hint=f"fix {error.filename}; the DAG processor picks up the change within seconds",
    )


def _changed_since(settings: Settings, relative: str | None, parsed: datetime | None) -> str | None:
    """The DAG file when it changed on disk after Airflow last parsed it (else None)."""
    if relative is None or parsed is None:
        return None
    path = settings.dags_folder / relative
    try:
        modified = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
    except OSError:
        return None
    return relative if modified > parsed else None


def wait_parsed(api: AirflowApi, settings: Settings, dag_id: str) -> Dag:
    """The DAG once Airflow has parsed its current file; its import error or the known ids
    otherwise.

    An id no local file mentions fails at once (a typo should not wait for a timeout); an id
    some file mentions is waited for, because the DAG processor may not have read it yet. A file
    saved after its last parse is waited for too, so the run uses the code on disk, and so is
    an import error older than its file (fixed, or touched by `sandbox build` when the image
    record it reads changed): the DAG processor is about to parse it again.
    """
    files = _mentions(settings, dag_id)
    pending: list[ImportErrorRecord] = []  # an import error waited out as stale

    def check() -> Dag:
        dag = api.get_dag(dag_id)
        errors = api.import_errors() if dag is None or dag.has_import_errors else []
        error = _import_error_for(errors, files, settings)
        pending.clear()
        if error is not None:
            stale = _changed_since(settings, error.filename, error.timestamp)
            if stale is not None:
                pending.append(error)
                raise NotReady(f"{stale} changed since its import error")
            raise _import_failed(dag_id, error)
        if dag is not None:
            edited = _changed_since(settings, dag.relative_fileloc, dag.last_parsed)
            if edited is None:
                return dag
            raise NotReady(f"{edited} changed since Airflow last parsed it")
        if not files:
            known = sorted(d.dag_id for d in api.list_dags())
            broken = ", ".join(e.filename for e in errors)
            raise UnknownDag(
                f"no DAG {dag_id!r} in Airflow; known DAGs: {', '.join(known) or '(none)'}",
                hint=(f"files failing to import: {broken}; " if broken else "")
                + f"check the id, or add its file to {settings.dags_folder}",
            )
        raise NotReady(f"{', '.join(p.name for p in files)} not parsed yet")

    try:
        return wait_until(
            check,
            what=f"DAG {dag_id!r} to be parsed",
            timeout=settings.timeouts.dag_parsed,
            interval=0.25,
            hint="look at the dag-processor's log (`sandbox logs dag-processor`)",
        )
    except WaitTimeout:
        if pending:  # never re-parsed (or the engine's clock is ahead of ours): show the error itself
            raise _import_failed(dag_id, pending[0]) from None
        raise


# -- run-dag ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskSummary:
    task: str
    state: str | None
    tries: int
    duration_s: float | None
    log_tail: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "state": self.state,
            "tries": self.tries,
            "duration_s": self.duration_s,
            "log_tail": list(self.log_tail),
        }


@dataclass(frozen=True)
class RunResult:
    dag_id: str
    run_id: str
    logical_date: datetime | None
    state: str
    url: str
    tasks: tuple[TaskSummary, ...]
    rerun: bool = False

    @property
    def ok(self) -> bool:
        return self.state == "success"

    def to_json(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "logical_date": self.logical_date.isoformat() if self.logical_date else None,
            "state": self.state,
            "ok": self.ok,
            "rerun": self.rerun,
            "url": self.url,
            "tasks": [t.to_json() for t in self.tasks],
        }


@dataclass(frozen=True)
class RunRequest:
    dag_id: str
    logical_date: datetime
    conf: Mapping[str, Any] = field(default_factory=dict)
    rerun: bool = False
    logs: bool = True
    timeout: float | None = None  # None: settings.timeouts.run
    note: str | None = None  # the run's note: the DAG folder's git source (core.lineage)


def summarize(api: AirflowApi, snapshot: RunSnapshot) -> tuple[TaskSummary, ...]:
    """A row per task; failed tasks carry their log tail."""

    def row(ti: TaskInstance) -> TaskSummary:
        failed = ti.state in ("failed", "up_for_retry")
        tail = tuple(log_tail(api, snapshot.run, ti)) if failed else ()
        return TaskSummary(ti.key, ti.state, ti.try_number, ti.duration, tail)

    return tuple(row(ti) for ti in snapshot.tasks)


def start_run(api: AirflowApi, request: RunRequest) -> tuple[DagRun, bool]:
    """Trigger the run; on 409 clear the existing one when asked to (returns it and rerun=True)."""
    try:
        return api.trigger(request.dag_id, request.logical_date, request.conf, note=request.note), False
    except AirflowApiError as exc:
        if exc.status != 409:
            raise
    day = format_logical_date(request.logical_date)
    existing = api.list_runs(request.dag_id, start=request.logical_date, end=request.logical_date)
    if not request.rerun or not existing:
        state = f" ({existing[0].state})" if existing else ""
        raise RunExists(
            f"DAG {request.dag_id!r} already has a run for {day}{state}",
            hint="add --rerun to clear that run and run it again, or pick another --date",
        )
    if request.note:  # before the clear, so every task of the rerun reads the new source
        api.set_run_note(request.dag_id, existing[0].run_id, request.note)
    return api.clear_run(request.dag_id, existing[0].run_id), True


def run_dag(
    api: AirflowApi,
    settings: Settings,
    request: RunRequest,
    *,
    on_started: Callable[[DagRun, bool], None] = lambda run, rerun: None,
    on_update: Callable[[RunSnapshot], None] = lambda snapshot: None,
    on_log: LogSink | None = None,
    on_note: Callable[[str], None] = lambda message: None,
) -> RunResult:
    """One DAG run through the real scheduler and Celery, followed to its end."""
    dag = wait_parsed(api, settings, request.dag_id)
    if dag.is_paused:
        api.set_paused(request.dag_id, False)
        if dag.schedule and settings.scheduled_runs:
            on_note(
                f"{request.dag_id} was paused; unpausing it also lets its schedule ({dag.schedule}) "
                "start runs, as in production (`scheduled_runs = false` in sandbox.toml: only "
                "triggered runs)"
            )
    run, rerun = start_run(api, request)
    on_started(run, rerun)
    return follow_to_result(
        api, settings, run, timeout=request.timeout, rerun=rerun, on_update=on_update,
        on_log=on_log if request.logs else None,
    )


def follow_to_result(
    api: AirflowApi,
    settings: Settings,
    run: DagRun,
    *,
    timeout: float | None,
    rerun: bool,
    on_update: Callable[[RunSnapshot], None],
    on_log: LogSink | None,
) -> RunResult:
    """Follow a started (or cleared) run to its end: the result `run-dag` and `clear` report."""
    final = follow_run(api, run, timeout=timeout or settings.timeouts.run, on_update=on_update, on_log=on_log)
    return RunResult(
        dag_id=run.dag_id,
        run_id=run.run_id,
        logical_date=final.run.logical_date,
        state=final.run.state,
        url=run_url(settings, run.dag_id, run.run_id),
        tasks=summarize(api, final),
        rerun=rerun,
    )


# -- backfill ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BackfillRequest:
    dag_id: str
    start: datetime
    end: datetime
    max_active_runs: int = 10
    rerun_failed: bool = False
    conf: Mapping[str, Any] = field(default_factory=dict)
    timeout: float | None = None
    note: str | None = None  # given to the runs this backfill queues (core.lineage)


@dataclass(frozen=True)
class DateResult:
    logical_date: datetime | None
    run_id: str
    state: str
    duration_s: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "logical_date": self.logical_date.isoformat() if self.logical_date else None,
            "run_id": self.run_id,
            "state": self.state,
            "duration_s": self.duration_s,
        }


@dataclass(frozen=True)
class BackfillResult:
    dag_id: str
    backfill_id: int
    runs: tuple[DateResult, ...]
    url: str

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(r.state == "success" for r in self.runs)

    def to_json(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "backfill_id": self.backfill_id,
            "ok": self.ok,
            "url": self.url,
            "runs": [r.to_json() for r in self.runs],
        }


def backfill(
    api: AirflowApi,
    settings: Settings,
    request: BackfillRequest,
    *,
    on_started: Callable[[Backfill], None] = lambda b: None,
    on_update: Callable[[BackfillSnapshot], None] = lambda snapshot: None,
) -> BackfillResult:
    """Airflow's own backfill (capped concurrency), followed with a row per logical date."""
    if request.start > request.end:
        raise UsageError(
            f"--start {format_logical_date(request.start)} is after --end "
            f"{format_logical_date(request.end)}",
            hint="swap the two dates",
        )
    dag = wait_parsed(api, settings, request.dag_id)
    if dag.is_paused:  # a paused DAG's backfill runs would stay queued forever
        api.set_paused(request.dag_id, False)
    try:
        created = api.create_backfill(
            request.dag_id,
            request.start,
            request.end,
            max_active_runs=request.max_active_runs,
            reprocess_behavior="failed" if request.rerun_failed else "none",
            conf=request.conf,
        )
    except AirflowApiError as exc:
        if exc.status == 409:
            raise UsageError(
                f"cannot start a backfill of {request.dag_id!r}: {exc.detail}",
                hint="wait for the running backfill to finish (or cancel it in the Airflow UI)",
            ) from exc
        if exc.status in (400, 422):
            raise UsageError(f"Airflow refused the backfill: {exc.detail}") from exc
        raise
    if request.note:
        note_backfill_runs(api, request)
    on_started(created)
    final = follow_backfill(
        api, created, timeout=request.timeout or settings.timeouts.run, on_update=on_update
    )
    return BackfillResult(
        dag_id=request.dag_id,
        backfill_id=created.id,
        runs=tuple(DateResult(r.logical_date, r.run_id, r.state, r.duration_s) for r in final.runs),
        url=f"{settings.api_url}/dags/{quote(request.dag_id, safe='')}/runs",
    )


def note_backfill_runs(api: AirflowApi, request: BackfillRequest) -> None:
    """The backfill API takes no note: give it to the runs it just queued (Airflow creates a
    backfill's runs at once, models/backfill.py `_create_backfill`). Runs of earlier backfills
    keep theirs; `show` reads the note when asked, so a task that starts first loses nothing."""
    for run in api.list_runs(request.dag_id, start=request.start, end=request.end):
        fresh = run.note is None or run.note.startswith(SOURCE_PREFIX)
        if run.run_type == "backfill" and run.state in ("queued", "running") and fresh:
            api.set_run_note(request.dag_id, run.run_id, request.note)


# -- dags --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DagOverview:
    dag_id: str
    paused: bool
    schedule: str | None
    last_run_state: str | None
    last_run_date: datetime | None
    has_import_errors: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "paused": self.paused,
            "schedule": self.schedule,
            "last_run_state": self.last_run_state,
            "last_run_logical_date": (
                self.last_run_date.isoformat() if self.last_run_date else None
            ),
            "has_import_errors": self.has_import_errors,
        }


@dataclass(frozen=True)
class DagsReport:
    dags: tuple[DagOverview, ...]
    import_errors: tuple[ImportErrorRecord, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "dags": [d.to_json() for d in self.dags],
            "import_errors": [
                {"filename": e.filename, "bundle": e.bundle_name, "stack_trace": e.stack_trace}
                for e in self.import_errors
            ],
        }


def dags_report(api: AirflowApi) -> DagsReport:
    overviews = []
    for dag in sorted(api.list_dags(), key=lambda d: d.dag_id):
        latest = api.list_runs(dag.dag_id, latest_only=True)
        last = latest[0] if latest else None
        overviews.append(
            DagOverview(
                dag.dag_id,
                dag.is_paused,
                dag.schedule,
                last.state if last else None,
                last.logical_date if last else None,
                dag.has_import_errors,
            )
        )
    return DagsReport(tuple(overviews), tuple(api.import_errors()))
