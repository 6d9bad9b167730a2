"""Day-2 operations over the Airflow API: pause/unpause, clear, mark, runs. No UI.

Every check that can refuse (unknown DAG, task or state, a reversed range, nothing to clear) runs
before anything changes, so bad input leaves Airflow as it was. `clear` follows the re-run with
run-dag's loop (sandbox.core.follow) and returns run-dag's RunResult per run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandbox.adapters.airflow_api import AirflowApi, Dag, DagRun, TaskInstance
from sandbox.config import Settings
from sandbox.core.dates import format_logical_date
from sandbox.core.follow import LogSink, RunSnapshot
from sandbox.core.lineage import run_metrics
from sandbox.core.runs import RunResult, follow_to_result, run_url
from sandbox.errors import UnknownDag, UsageError

# What `mark` may set (the API accepts more, these are the two the technique needs) and the
# states a run can be in (airflow.utils.state.DagRunState).
MARK_STATES: tuple[str, ...] = ("success", "failed")
RUN_STATES: tuple[str, ...] = ("queued", "running", "success", "failed")


def require_dag(api: AirflowApi, dag_id: str) -> Dag:
    """The DAG, or UnknownDag (exit 2) naming the ids Airflow knows."""
    dag = api.get_dag(dag_id)
    if dag is None:
        known = sorted(d.dag_id for d in api.list_dags())
        raise UnknownDag(
            f"no DAG {dag_id!r} in Airflow; known DAGs: {', '.join(known) or '(none)'}",
            hint="check the id (`sandbox dags` lists them)",
        )
    return dag


def require_tasks(api: AirflowApi, dag_id: str, task_ids: Iterable[str]) -> None:
    known = api.task_ids(dag_id)
    unknown = [t for t in task_ids if t not in known]
    if unknown:
        raise UsageError(
            f"DAG {dag_id!r} has no task {', '.join(repr(t) for t in unknown)}; "
            f"its tasks: {', '.join(known)}",
            hint="check --task",
        )


def require_range(start: datetime, end: datetime) -> None:
    if start > end:
        raise UsageError(
            f"--start {format_logical_date(start)} is after --end {format_logical_date(end)}",
            hint="swap the two dates",
        )


def require_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UsageError(
            f"{option} {value!r} is not one of: {', '.join(choices)}",
            hint=f"e.g. {option} {choices[-1]}",
        )


# -- pause / unpause --------------------------------------------------------------------------
@dataclass(frozen=True)
class PauseChange:
    dag_id: str
    was_paused: bool
    paused: bool

    def to_json(self) -> dict[str, Any]:
        return {"dag_id": self.dag_id, "was_paused": self.was_paused, "paused": self.paused}


def set_paused(
    api: AirflowApi, dag_ids: Iterable[str], *, paused: bool, all_dags: bool = False
) -> tuple[PauseChange, ...]:
    """Pause (no new runs start; running tasks finish) or unpause DAGs; every id is checked first."""
    ids = list(dict.fromkeys(dag_ids))
    if all_dags == bool(ids):
        raise UsageError(
            "name the DAGs or pass --all (not both)", hint="e.g. `sandbox pause recommend` or `sandbox pause --all`"
        )
    dags = sorted(api.list_dags(), key=lambda d: d.dag_id) if all_dags else [require_dag(api, i) for i in ids]
    changes = []
    for dag in dags:
        now = api.set_paused(dag.dag_id, paused) if dag.is_paused != paused else dag
        changes.append(PauseChange(dag.dag_id, dag.is_paused, now.is_paused))
    return tuple(changes)


# -- clear ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClearRequest:
    dag_id: str
    start: datetime
    end: datetime
    task_ids: tuple[str, ...] = ()
    downstream: bool = False
    upstream: bool = False
    only_failed: bool = False
    dry_run: bool = False
    logs: bool = True
    timeout: float | None = None  # None: settings.timeouts.run


@dataclass(frozen=True)
class ClearResult:
    dag_id: str
    cleared: tuple[TaskInstance, ...]  # what was cleared (or, dry run, would be)
    dry_run: bool
    runs: tuple[RunResult, ...] = ()  # the re-runs, followed to their end

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.runs)

    def to_json(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "cleared": [
                {
                    "task": ti.key,
                    "run_id": ti.run_id,
                    "logical_date": ti.logical_date.isoformat() if ti.logical_date else None,
                    "state": ti.state,
                }
                for ti in self.cleared
            ],
            "runs": [r.to_json() for r in self.runs],
        }


def clear(
    api: AirflowApi,
    settings: Settings,
    request: ClearRequest,
    *,
    on_cleared: Callable[[tuple[TaskInstance, ...]], None] = lambda tis: None,
    on_started: Callable[[DagRun], None] = lambda run: None,
    on_update: Callable[[RunSnapshot], None] = lambda snapshot: None,
    on_log: LogSink | None = None,
) -> ClearResult:
    """Clear task instances of the date range and follow the runs they belong to again."""
    require_range(request.start, request.end)
    dag = require_dag(api, request.dag_id)
    require_tasks(api, request.dag_id, request.task_ids)
    span = format_logical_date(request.start)
    if request.end != request.start:
        span += f" to {format_logical_date(request.end)}"

    def call(dry_run: bool) -> tuple[TaskInstance, ...]:
        return tuple(
            api.clear_task_instances(
                request.dag_id,
                start=request.start,
                end=request.end,
                task_ids=request.task_ids,
                downstream=request.downstream,
                upstream=request.upstream,
                only_failed=request.only_failed,
                dry_run=dry_run,
            )
        )

    planned = call(dry_run=True)
    if not planned:
        which = "failed task instances" if request.only_failed else "task instances"
        raise UsageError(
            f"nothing to clear: no {which} of {request.dag_id!r} for {span}"
            + (f" (tasks {', '.join(request.task_ids)})" if request.task_ids else ""),
            hint=f"`sandbox runs {request.dag_id}` lists its runs",
        )
    if request.dry_run:
        return ClearResult(request.dag_id, planned, dry_run=True)
    if dag.is_paused:
        raise UsageError(
            f"DAG {request.dag_id!r} is paused, so its cleared runs would not start; nothing was cleared",
            hint=f"`sandbox unpause {request.dag_id}` first (or look with --dry-run)",
        )
    cleared = call(dry_run=False)
    on_cleared(cleared)
    results = []
    for run_id in dict.fromkeys(ti.run_id for ti in cleared if ti.run_id):
        run = api.get_run(request.dag_id, run_id)
        on_started(run)
        results.append(
            follow_to_result(
                api, settings, run, timeout=request.timeout, rerun=True, on_update=on_update,
                on_log=on_log if request.logs else None,
            )
        )
    return ClearResult(request.dag_id, cleared, dry_run=False, runs=tuple(results))


# -- mark -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MarkResult:
    dag_id: str
    run: DagRun
    task_id: str
    state: str
    tasks: tuple[TaskInstance, ...]  # the run's task instances after the change
    url: str

    def to_json(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "run_id": self.run.run_id,
            "logical_date": self.run.logical_date.isoformat() if self.run.logical_date else None,
            "task": self.task_id,
            "state": self.state,
            "url": self.url,
            "tasks": [{"task": ti.key, "state": ti.state} for ti in self.tasks],
        }


def mark(
    api: AirflowApi,
    settings: Settings,
    dag_id: str,
    logical_date: datetime,
    task_id: str,
    state: str,
    *,
    downstream: bool = False,
) -> MarkResult:
    """Set a task instance of the run at `logical_date` to success or failed (what the UI's
    "Mark as" does). The run need not have started: a queued run's tasks exist already."""
    require_choice("STATE", state, MARK_STATES)
    require_dag(api, dag_id)
    require_tasks(api, dag_id, [task_id])
    runs = api.list_runs(dag_id, start=logical_date, end=logical_date)
    if not runs:
        raise UsageError(
            f"DAG {dag_id!r} has no run for {format_logical_date(logical_date)}",
            hint=f"`sandbox runs {dag_id}` lists its runs",
        )
    run = runs[0]
    api.set_task_state(dag_id, run.run_id, task_id, state, downstream=downstream)
    return MarkResult(
        dag_id,
        api.get_run(dag_id, run.run_id),
        task_id,
        state,
        tuple(api.task_instances(dag_id, run.run_id)),
        run_url(settings, dag_id, run.run_id),
    )


# -- runs -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunRow:
    """One run as `sandbox runs` shows it; later issues add columns here (and to its JSON)."""

    run_id: str
    logical_date: datetime | None
    run_type: str
    state: str
    start_date: datetime | None
    duration_s: float | None
    # Each task's headline metrics (sandbox.core.lineage.run_metrics): task -> name -> number.
    metrics: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    @classmethod
    def of(cls, run: DagRun, metrics: Mapping[str, Mapping[str, float]] | None = None) -> RunRow:
        return cls(
            run.run_id, run.logical_date, run.run_type, run.state, run.start_date, run.duration_s,
            dict(metrics or {}),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "logical_date": self.logical_date.isoformat() if self.logical_date else None,
            "run_type": self.run_type,
            "state": self.state,
            "start_date": self.start_date.isoformat() if self.start_date else None,
            "duration_s": self.duration_s,
            "metrics": {task: dict(numbers) for task, numbers in self.metrics.items()},
        }


@dataclass(frozen=True)
class RunsReport:
    dag_id: str
    rows: tuple[RunRow, ...]

    def to_json(self) -> dict[str, Any]:
        return {"dag_id": self.dag_id, "runs": [r.to_json() for r in self.rows]}


def runs_report(
    api: AirflowApi, dag_id: str, *, states: tuple[str, ...] = (), last: int | None = None
) -> RunsReport:
    """The DAG's runs by logical date, oldest first (`last`: only the newest N)."""
    for state in states:
        require_choice("--state", state, RUN_STATES)
    require_dag(api, dag_id)
    runs = api.list_runs(dag_id, states=states, last=last)
    return RunsReport(dag_id, tuple(RunRow.of(r, run_metrics(api, dag_id, r.run_id)) for r in runs))
