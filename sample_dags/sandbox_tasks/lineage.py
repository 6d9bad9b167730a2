"""Metrics from stdout and a lineage record per task try, captured in the Airflow worker.

The convention, for any step in any language: **a line of output that is exactly one JSON
object is a metrics line**. Objects merge key by key in the order printed; a key printed again
keeps its last value. Merge rather than last-line-wins because a step may report as it goes
(`{"epoch": 3, "loss": 0.2}` ... `{"rmse": 1.4}`) and should lose nothing, while one that prints
a complete object every time still gets the last one; and because the provider may re-read a
log after a dropped connection (`since_time`), so a line seen twice must change nothing.
Everything else is ordinary log output. Kubernetes returns stdout and stderr as one log, so
"stdout" means the container's log; print progress for humans as plain text.

Ignored, with a warning in the task log and in the record, never failing the task: a line that
starts with `{` but is not valid JSON (or holds NaN/Infinity, which JSON and Postgres refuse),
a metrics line longer than MAX_LINE_CHARS, keys beyond MAX_KEYS.

How it is captured: `MetricsCapture` is a KubernetesPodOperatorCallback (provider
cncf-kubernetes 10.25, `callbacks.py`). `PodManager.fetch_container_logs` (utils/pod_manager.py)
calls `progress_callback(line=..., container_name=..., pod=...)` for every log line it follows
into the task log (`get_logs=True`; a line continued without a timestamp arrives joined by
"\\n"); `execute_sync` calls `on_pod_completion(pod=<re-read pod>, operator=, context=)` once the
base container has finished and its log has been read, before `cleanup` fails the task for a
bad exit code. So: no sidecar, no exec (ACI v1 refuses exec), the same log the task shows.
The callbacks do not run in deferrable mode (the provider says so): keep `deferrable=False`.

Stored as two XComs of the task instance (Airflow's metadata database): METRICS_KEY (the merged
object, what `ti.xcom_pull(task_ids=..., key=METRICS_KEY)` gives a downstream task) and
LINEAGE_KEY (the whole record). Airflow clears a task instance's XComs when a new try starts
(execution API `ti_run` hands the worker `xcom_keys_to_clear`), so the XComs hold the latest
try; every try also writes its record into its own task log as one `sandbox-lineage {...}` line.

Only the standard library, Airflow and kubernetes: this runs in the official Airflow images.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airflow.providers.cncf.kubernetes.callbacks import KubernetesPodOperatorCallback

log = logging.getLogger(__name__)

METRICS_KEY = "sandbox_metrics"
LINEAGE_KEY = "sandbox_lineage"
RECORD_VERSION = 1
LOG_PREFIX = "sandbox-lineage "
MAX_LINE_CHARS = 64 * 1024
MAX_KEYS = 256
MAX_WARNINGS = 20
# Container fields a rerun needs; the API server adds the rest (token mounts, defaults).
RERUN_FIELDS = ("name", "image", "command", "args", "env", "envFrom", "resources", "imagePullPolicy", "workingDir")
# DefaultTolerationSeconds admission adds these to every pod: not part of what the task asked.
ADMISSION_TOLERATIONS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
VIRTUAL_NODE_TYPE = "virtual-kubelet"


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


@dataclass
class MetricsCollector:
    """Feed it output lines as they come; it keeps only the merged metrics and warnings."""

    metrics: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    lines: int = 0

    def feed(self, text: str) -> None:
        for line in text.split("\n"):
            self.lines += 1
            self._line(line.strip())

    def _warn(self, message: str) -> None:
        log.warning("metrics: %s", message)
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(message)

    def _line(self, line: str) -> None:
        if not line.startswith("{"):
            return
        if len(line) > MAX_LINE_CHARS:
            self._warn(f"ignored a {len(line)}-character metrics line (limit {MAX_LINE_CHARS})")
            return
        try:
            value = json.loads(line, parse_constant=_no_constant)
        except ValueError as exc:
            self._warn(f"ignored a line that starts with '{{' but is not a JSON object ({exc}): {line[:80]}")
            return
        if not isinstance(value, dict):
            return
        for key, item in value.items():
            if key not in self.metrics and len(self.metrics) >= MAX_KEYS:
                self._warn(f"ignored metric {key[:40]!r}: more than {MAX_KEYS} keys")
                continue
            self.metrics[key] = item


def parse_metrics(lines: Iterable[str]) -> MetricsCollector:
    collector = MetricsCollector()
    for line in lines:
        collector.feed(line)
    return collector


# -- the record -------------------------------------------------------------------------------
def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def declared_io(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """The blob paths a step declares through the step contract's `--input`/`--output`."""
    found: dict[str, list[str]] = {"--input": [], "--output": []}
    items = list(args)
    for i, arg in enumerate(items):
        name, eq, inline = arg.partition("=")
        if name in found:
            if eq:
                found[name].append(inline)
            elif i + 1 < len(items):
                found[name].append(items[i + 1])
    return found["--input"], found["--output"]


def pinned_image(image_id: str | None) -> str | None:
    """`repo@sha256:...` from a containerStatuses imageID (docker's `docker-pullable://` prefix
    stripped), i.e. the registry digest a node pulled (AKS from ACR). None when the node has no
    registry digest: images `kind load` imports report a bare `sha256:` image ID
    (kubernetes-sigs/kind#2734) or, with some kind/podman versions, a made-up
    `docker.io/library/import-<date>@sha256:` name (kubernetes-sigs/kind#4184)."""
    if not image_id:
        return None
    for prefix in ("docker-pullable://", "docker://"):
        image_id = image_id.removeprefix(prefix)
    repository, at, _ = image_id.partition("@sha256:")
    if not at or repository.rsplit("/", 1)[-1].startswith("import-"):
        return None
    return image_id


def pod_record(pod: Any, container_name: str) -> dict[str, Any]:
    """What the pod says about one container: image and the ID the node ran, node, rendered
    command/args, placement, times and exit code. `pod` is a kubernetes V1Pod."""
    from kubernetes.client import ApiClient

    spec, status = pod.spec, pod.status
    container = next((c for c in spec.containers if c.name == container_name), spec.containers[0])
    raw = ApiClient().sanitize_for_serialization(container)
    statuses = (status.container_statuses if status else None) or []
    state = next((s for s in statuses if s.name == container.name), None)
    terminated = state.state.terminated if state and state.state else None
    started = terminated.started_at if terminated else None
    finished = terminated.finished_at if terminated else None
    node_selector = dict(spec.node_selector or {})
    tolerations = [
        t for t in ApiClient().sanitize_for_serialization(spec.tolerations or [])
        if t.get("key") not in ADMISSION_TOLERATIONS
    ]
    inputs, outputs = declared_io(container.args or [])
    return {
        "image": {
            "ref": container.image,
            "id": state.image_id if state else None,
            "pinned": pinned_image(state.image_id if state else None),
        },
        "node": {
            "name": spec.node_name,
            # The pod can only have landed on a node matching its selector.
            "virtual": node_selector.get("type") == VIRTUAL_NODE_TYPE,
        },
        "pod": {"namespace": pod.metadata.namespace, "name": pod.metadata.name, "phase": status.phase if status else None},
        "container": {k: raw[k] for k in RERUN_FIELDS if k in raw},
        "placement": {"nodeSelector": node_selector, "tolerations": tolerations},
        "started_at": _iso(started),
        "finished_at": _iso(finished),
        "duration_s": round((finished - started).total_seconds(), 3) if started and finished else None,
        "exit_code": terminated.exit_code if terminated else None,
        "reason": terminated.reason if terminated else None,
        "inputs": inputs,
        "outputs": outputs,
    }


def task_record(context: Mapping[str, Any]) -> dict[str, Any]:
    """What Airflow says about the try: ids, try number, the run's conf and resolved params."""
    ti = context["ti"]
    dag_run = context.get("dag_run")
    params = context.get("params") or {}
    return {
        "version": RECORD_VERSION,
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "map_index": ti.map_index,
        "try_number": ti.try_number,
        "conf": _json_safe(dict(dag_run.conf or {})) if dag_run is not None else {},
        "params": _json_safe({k: params[k] for k in params}),
    }


def publish(context: Mapping[str, Any], record: dict[str, Any], collector: MetricsCollector) -> dict[str, Any]:
    """Push the metrics and the record as XComs and log the record; never raises."""
    try:
        record = {**record, "metrics": _json_safe(collector.metrics), "warnings": list(collector.warnings)}
        ti = context["ti"]
        ti.xcom_push(key=METRICS_KEY, value=record["metrics"])
        ti.xcom_push(key=LINEAGE_KEY, value=record)
        log.info("%s%s", LOG_PREFIX, json.dumps(record, sort_keys=True))
    except Exception:  # a record is worth less than the task: say so and carry on
        log.warning("could not store the metrics/lineage record of this task", exc_info=True)
    return record


# -- KubernetesPodOperator ------------------------------------------------------------------------
class MetricsCapture(KubernetesPodOperatorCallback):
    """`callbacks=[MetricsCapture]` on a KubernetesPodOperator (virtual_node() adds it)."""

    # Lines of the pods this task process is following, by (namespace, pod, container). Airflow 3
    # runs each task try in a process of its own, and a try's pod name is unique.
    _collectors: dict[tuple[str, str, str], MetricsCollector] = {}

    @staticmethod
    def progress_callback(*, line: str, container_name: str, pod: Any, **kwargs: Any) -> None:
        try:
            key = (pod.metadata.namespace, pod.metadata.name, container_name)
            MetricsCapture._collectors.setdefault(key, MetricsCollector()).feed(line)
        except Exception:
            log.warning("metrics: could not read a log line", exc_info=True)

    @staticmethod
    def on_pod_completion(*, pod: Any, operator: Any, context: Any, **kwargs: Any) -> None:
        try:
            container = operator.base_container_name
            key = (pod.metadata.namespace, pod.metadata.name, container)
            collector = MetricsCapture._collectors.pop(key, None) or MetricsCollector()
            if not getattr(operator, "get_logs", True):
                collector.warnings.append("get_logs=False: the log was not read, no metrics")
            record = {"kind": "pod", **task_record(context), **pod_record(pod, container)}
        except Exception:
            log.warning("could not build the lineage record of this task", exc_info=True)
            return
        publish(context, record, collector)


# -- Python tasks ---------------------------------------------------------------------------------
class _Tee(io.TextIOBase):
    def __init__(self, target: Any, collector: MetricsCollector) -> None:
        self._target, self._collector, self._partial = target, collector, ""

    def write(self, text: str) -> int:
        self._target.write(text)
        *complete, self._partial = (self._partial + text).split("\n")
        for line in complete:
            self._collector.feed(line)
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def close_partial(self) -> None:
        if self._partial:
            self._collector.feed(self._partial)


@contextlib.contextmanager
def stdout_metrics(context: Mapping[str, Any] | None = None) -> Iterator[MetricsCollector]:
    """The same convention for a Python task: what the block prints still reaches the task
    log; its metrics lines become the task's metrics XCom and record (kind "python")."""
    if context is None:
        from airflow.sdk import get_current_context

        context = get_current_context()
    collector = MetricsCollector()
    tee = _Tee(sys.stdout, collector)
    with contextlib.redirect_stdout(tee):
        yield collector
    tee.close_partial()
    ti = context["ti"]
    started = getattr(ti, "start_date", None)
    publish(context, {"kind": "python", **task_record(context), "started_at": _iso(started)}, collector)


def pulled_metrics(context: Mapping[str, Any], task_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The metrics XCom of each upstream task, by task id ({} for one that recorded none)."""
    ti = context["ti"]
    return {task_id: dict(ti.xcom_pull(task_ids=task_id, key=METRICS_KEY) or {}) for task_id in task_ids}
