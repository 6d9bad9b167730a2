"""Lineage records and metrics of task runs: read from Airflow, shown, compared. No UI.

Where a record lives: the worker stores each task try's record and metrics as XComs of the task
instance (sample_dags/sandbox_tasks/lineage.py), i.e. in Airflow's metadata database, the
Postgres volume `sandbox down` keeps (only `--purge` drops it). That store already belongs to
the run it describes (cleared with it, exported with it, on AKS the same database), and the
worker can write it without credentials to anything else; the state dir would be on the laptop
only and blob storage would need the task to reach it. The run-level part — which commit of the
DAG folder was triggered, dirty or not — is the run's note, written by `run-dag`/`backfill`
(SOURCE_PREFIX), because the DAG folder reaches the containers without its `.git`.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sandbox.adapters.airflow_api import AirflowApi, DagRun
from sandbox.adapters.git import Source, source_of
from sandbox.config import Settings
from sandbox.core.dates import format_logical_date
from sandbox.errors import UsageError

# The XCom keys sandbox_tasks.lineage writes (a unit test keeps the two equal).
METRICS_KEY = "sandbox_metrics"
LINEAGE_KEY = "sandbox_lineage"
SOURCE_PREFIX = "sandbox source: "
_SOURCE_LINE = re.compile(r"^sandbox source: git (?P<commit>[0-9a-f]{7,64})(?P<dirty> \(dirty\))? of (?P<folder>.+)$", re.M)
# Metric names where smaller is better; every other metric: larger is better.
LOWER_IS_BETTER = re.compile(r"(loss|err|rmse|mse|mae|mape|latency|duration|seconds|time)", re.I)


# -- the run's source (git) --------------------------------------------------------------------
def source_note(source: Source | None, folder: Path) -> str:
    """The note line run-dag/backfill give a run: commit, dirty flag and the DAG folder."""
    if source is None:
        return f"{SOURCE_PREFIX}{folder} is not in a git work tree with a commit (no commit recorded)"
    dirty = " (dirty)" if source.dirty else ""
    return f"{SOURCE_PREFIX}git {source.commit}{dirty} of {folder}"


def trigger_note(settings: Settings) -> str:
    """The note for a run triggered now: the DAG folder's commit and dirty flag."""
    folder = settings.dags_folder
    try:
        shown = folder.resolve().relative_to(settings.project_dir.resolve())
    except ValueError:
        shown = folder
    return source_note(source_of(folder), shown)


def parse_source(note: str | None) -> dict[str, Any] | None:
    """The commit a run was triggered from, from its note; None for runs the sandbox CLI did
    not trigger (scheduled runs, the UI) or whose note was edited away."""
    match = _SOURCE_LINE.search(note or "")
    if match is None:
        return None
    return {"commit": match["commit"], "dirty": bool(match["dirty"]), "dags_folder": match["folder"]}


# -- records ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskRecord:
    """One task try's record as the worker stored it (version 1); `raw` is exported as is."""

    task_id: str
    map_index: int
    try_number: int | None
    kind: str
    metrics: Mapping[str, Any]
    raw: Mapping[str, Any]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskRecord:
        return cls(
            task_id=str(data["task_id"]),
            map_index=int(data.get("map_index", -1)),
            try_number=data.get("try_number"),
            kind=str(data.get("kind", "pod")),
            metrics=dict(data.get("metrics") or {}),
            raw=dict(data),
        )

    @property
    def key(self) -> str:
        return self.task_id if self.map_index < 0 else f"{self.task_id}[{self.map_index}]"

    @property
    def image(self) -> Mapping[str, Any]:
        return self.raw.get("image") or {}

    @property
    def node(self) -> Mapping[str, Any]:
        return self.raw.get("node") or {}


def headline(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The numbers among a task's metrics (labels such as `model` are not compared)."""
    return {
        k: float(v) for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


def run_metrics(api: AirflowApi, dag_id: str, run_id: str) -> dict[str, dict[str, float]]:
    """Each task's headline metrics in one run (tasks without metrics are left out): the
    columns `sandbox runs` and `compare` show."""
    found: dict[str, dict[str, float]] = {}
    for task_id, map_index in api.xcom_tasks(dag_id, run_id, METRICS_KEY):
        value = api.xcom_value(dag_id, run_id, task_id, METRICS_KEY, map_index=map_index)
        numbers = headline(value) if isinstance(value, Mapping) else {}
        if numbers:
            found[task_id if map_index < 0 else f"{task_id}[{map_index}]"] = numbers
    return found


def task_records(api: AirflowApi, dag_id: str, run_id: str) -> list[TaskRecord]:
    records = []
    for task_id, map_index in api.xcom_tasks(dag_id, run_id, LINEAGE_KEY):
        value = api.xcom_value(dag_id, run_id, task_id, LINEAGE_KEY, map_index=map_index)
        if isinstance(value, Mapping) and "task_id" in value:
            records.append(TaskRecord.from_json(value))
    return sorted(records, key=lambda r: (r.raw.get("started_at") or "", r.key))


def find_run(api: AirflowApi, dag_id: str, logical_date: datetime) -> DagRun:
    runs = api.list_runs(dag_id, start=logical_date, end=logical_date)
    if not runs:
        day = format_logical_date(logical_date)
        recent = ", ".join(format_logical_date(r.logical_date) for r in reversed(api.list_runs(dag_id, last=5)))
        raise UsageError(
            f"DAG {dag_id!r} has no run for {day}",
            hint=f"recent runs: {recent}" if recent else f"run it first: sandbox run-dag {dag_id} --date {day}",
        )
    return runs[0]


# -- show -----------------------------------------------------------------------------------------
def rerun_manifest(record: TaskRecord) -> dict[str, Any]:
    """A bare pod with the step's container (image pinned to the digest the node ran, when it
    has one), placement and namespace: the step by itself, no Airflow."""
    raw = record.raw
    container = dict(raw.get("container") or {})
    container["image"] = record.image.get("pinned") or record.image.get("ref") or container.get("image")
    placement = raw.get("placement") or {}
    spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if placement.get("nodeSelector"):
        spec["nodeSelector"] = placement["nodeSelector"]
    if placement.get("tolerations"):
        spec["tolerations"] = placement["tolerations"]
    name = re.sub(r"[^a-z0-9-]+", "-", record.task_id.lower()).strip("-")[:40] or "step"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"{name}-rerun-",
            "namespace": (raw.get("pod") or {}).get("namespace") or "default",
            "labels": {"app.kubernetes.io/part-of": "sandbox-rerun"},
        },
        "spec": spec,
    }


def rerun_command(record: TaskRecord, *, dag_id: str, logical_date: datetime | None, kubeconfig: Path | None) -> str:
    """Copy-pasteable shell: the pod again with the same image and arguments (pod tasks), or
    Airflow's `tasks test` for a task that ran in the worker."""
    if record.kind != "pod":
        day = format_logical_date(logical_date) if logical_date else "DATE"
        return shlex.join(["sandbox", "airflow", "tasks", "test", dag_id, record.task_id, day])
    lines = []
    image_id = record.image.get("id")
    if not record.image.get("pinned"):
        ran = f"image ID {image_id}" if image_id else "no image ID (the node did not report one)"
        lines.append(
            f"# the node reported {ran}, not a registry digest (an image `kind load` put on the "
            "node has none): the pod uses the recorded reference, a content-hash tag in the sandbox"
        )
    prefix = f"KUBECONFIG={shlex.quote(str(kubeconfig))} " if kubeconfig else ""
    manifest = json.dumps(rerun_manifest(record), indent=2, sort_keys=True)
    lines.append(f"{prefix}kubectl create -o name -f - <<'EOF'\n{manifest}\nEOF")
    return "\n".join(lines)


@dataclass(frozen=True)
class Shown:
    dag_id: str
    run: DagRun
    source: dict[str, Any] | None
    records: tuple[TaskRecord, ...]
    rerun: Mapping[str, str] = field(default_factory=dict)  # task key -> command

    def to_json(self) -> dict[str, Any]:
        run = self.run
        return {
            "dag_id": self.dag_id,
            "run_id": run.run_id,
            "logical_date": run.logical_date.isoformat() if run.logical_date else None,
            "run_type": run.run_type,
            "state": run.state,
            "conf": dict(run.conf),
            "source": self.source,
            "tasks": [{**r.raw, "rerun": self.rerun.get(r.key)} for r in self.records],
        }


def show(
    api: AirflowApi,
    dag_id: str,
    logical_date: datetime,
    *,
    task: str | None = None,
    kubeconfig: Path | None = None,
) -> Shown:
    run = find_run(api, dag_id, logical_date)
    records = task_records(api, dag_id, run.run_id)
    if task is not None:
        chosen = [r for r in records if task in (r.task_id, r.key)]
        if not chosen:
            have = ", ".join(r.key for r in records) or "none"
            raise UsageError(
                f"no lineage record for task {task!r} in {run.run_id} (records: {have})",
                hint="only tasks that capture metrics (virtual_node() pod tasks, stdout_metrics()) have records",
            )
        records = chosen
    commands = {
        r.key: rerun_command(r, dag_id=dag_id, logical_date=run.logical_date, kubeconfig=kubeconfig)
        for r in records
    }
    return Shown(dag_id, run, parse_source(run.note), tuple(records), commands)


# -- compare --------------------------------------------------------------------------------------
def lower_is_better(metric: str) -> bool:
    return bool(LOWER_IS_BETTER.search(metric))


@dataclass(frozen=True)
class Comparison:
    """Rows: runs, newest first. Columns: (task, metric). `best`: the best cell per metric."""

    dag_id: str
    runs: tuple[DagRun, ...]
    columns: tuple[tuple[str, str], ...]
    values: Mapping[str, Mapping[tuple[str, str], float]]  # run_id -> column -> value
    best: Mapping[str, tuple[str, tuple[str, str]]]  # metric -> (run_id, column)
    goals: Mapping[str, str]  # metric -> "min" | "max"

    def to_json(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "goals": dict(self.goals),
            "runs": [
                {
                    "run_id": run.run_id,
                    "logical_date": run.logical_date.isoformat() if run.logical_date else None,
                    "state": run.state,
                    "metrics": {
                        task: {m: v for (t, m), v in self.values[run.run_id].items() if t == task}
                        for task in sorted({t for t, _ in self.values[run.run_id]})
                    },
                }
                for run in self.runs
            ],
            "best": {
                metric: {"run_id": run_id, "task": column[0], "value": self.values[run_id][column]}
                for metric, (run_id, column) in self.best.items()
            },
        }


def compare(
    api: AirflowApi,
    dag_id: str,
    *,
    metric: str | None = None,
    last: int = 10,
    goal: str | None = None,
) -> Comparison:
    """The last `last` runs' metrics side by side; `metric` keeps one metric name."""
    if api.get_dag(dag_id) is None:
        raise UsageError(f"no DAG {dag_id!r} in Airflow", hint="`sandbox dags` lists the DAGs")
    runs = tuple(reversed(api.list_runs(dag_id, last=last)))  # newest first
    values: dict[str, dict[tuple[str, str], float]] = {}
    for run in runs:
        values[run.run_id] = {
            (task, name): value
            for task, numbers in run_metrics(api, dag_id, run.run_id).items()
            for name, value in numbers.items()
            if metric is None or name == metric
        }
    columns = tuple(sorted({c for row in values.values() for c in row}))
    if metric is not None and not columns and runs:
        seen = sorted({n for r in runs for _, n in _all_columns(api, dag_id, r.run_id)})
        raise UsageError(
            f"no metric {metric!r} in the last {len(runs)} runs of {dag_id!r}",
            hint=f"metrics recorded: {', '.join(seen)}" if seen else "no task of these runs recorded metrics",
        )
    goals = {m: goal or ("min" if lower_is_better(m) else "max") for _, m in columns}
    best: dict[str, tuple[str, tuple[str, str]]] = {}
    for name, direction in goals.items():
        cells = [(v, run_id, c) for run_id, row in values.items() for c, v in row.items() if c[1] == name]
        pick = min(cells, key=lambda x: x[0]) if direction == "min" else max(cells, key=lambda x: x[0])
        best[name] = (pick[1], pick[2])
    return Comparison(dag_id, runs, columns, values, best, goals)


def _all_columns(api: AirflowApi, dag_id: str, run_id: str) -> list[tuple[str, str]]:
    return [(t, n) for t, numbers in run_metrics(api, dag_id, run_id).items() for n in numbers]


def plot_series(comparison: Comparison) -> list[tuple[str, list[str], list[float | None]]]:
    """One series per (task, metric) over the runs, oldest first: what --plot draws."""
    runs = list(reversed(comparison.runs))
    labels = [format_logical_date(r.logical_date) if r.logical_date else r.run_id for r in runs]
    return [
        (f"{task} · {metric}", labels, [comparison.values[r.run_id].get((task, metric)) for r in runs])
        for task, metric in comparison.columns
    ]


def metric_names(columns: Sequence[tuple[str, str]]) -> list[str]:
    return sorted({m for _, m in columns})
