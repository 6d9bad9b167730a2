"""`sandbox lint`: will these DAGs' pod tasks run on the AKS virtual node?

Loads the folder with Airflow's DagBag (import errors are findings), renders every
KubernetesPodOperator task's pod with the provider's builder, predicts its placement against the
nodes `sandbox up` declares, and — for pods that can land on the virtual node — evaluates the
profile's ACI rules with the same CEL expressions the cluster's admission policy runs.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import sys
import tempfile
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.config import PROFILES, Settings, is_project
from sandbox.core.airflow_config import PROFILE_ENV
from sandbox.core.images.records import RECORD_ENV
from sandbox.core.kind_config import VIRTUAL_NODE_TAINT, NodeSpec, declared_nodes, virtual_node_kind
from sandbox.core.placement import predict
from sandbox.core.policy import check_pod
from sandbox.errors import ConfigError, UsageError
from sandbox.text import last_line

@dataclass(frozen=True)
class Finding:
    rule: str  # a rule id from sandbox/policy/aci_rules.yaml, or unschedulable/render/import
    message: str


@dataclass(frozen=True)
class TaskResult:
    dag_id: str
    task_id: str
    file: str
    target: str  # virtual-node | worker | virtual-node-or-worker | unschedulable | not-rendered
    reason: str
    violations: tuple[Finding, ...] = ()
    warnings: tuple[Finding, ...] = ()


@dataclass(frozen=True)
class ImportProblem:
    file: str
    message: str


@dataclass(frozen=True)
class LintReport:
    folder: Path
    profile: str
    tasks: tuple[TaskResult, ...]
    import_errors: tuple[ImportProblem, ...] = ()
    missing_dags: tuple[str, ...] = ()
    dag_count: int = 0

    @property
    def violation_count(self) -> int:
        return sum(len(t.violations) for t in self.tasks)

    @property
    def ok(self) -> bool:
        return not (self.violation_count or self.import_errors or self.missing_dags)

    def lines(self) -> list[str]:
        """Plain-text rendering: one line per task, then its violations and warnings."""
        out = [f"{p.file}: import error: {p.message}" for p in self.import_errors]
        out += [f"DAG {d}: not found in {self.folder}" for d in self.missing_dags]
        for t in self.tasks:
            out.append(f"{t.dag_id}.{t.task_id}: {t.target} ({t.reason})")
            out += [f"  ✗ {f.message}" for f in t.violations]
            out += [f"  ! {f.message}" for f in t.warnings]
        out.append(self.summary())
        return out

    def summary(self) -> str:
        warnings = sum(len(t.warnings) for t in self.tasks)
        return (
            f"{len(self.tasks)} pod task(s) in {self.dag_count} DAG(s), profile {self.profile}: "
            f"{self.violation_count} violation(s), {warnings} warning(s), "
            f"{len(self.import_errors)} import error(s)"
        )

    def to_json(self) -> list[dict[str, Any]]:
        """One object per pod task (and per import error, with target "import-error")."""
        items: list[dict[str, Any]] = [
            {
                "dag_id": None,
                "task_id": None,
                "file": p.file,
                "target": "import-error",
                "reason": p.message,
                "violations": [p.message],
                "violation_rules": ["import"],
                "warnings": [],
                "warning_rules": [],
            }
            for p in self.import_errors
        ]
        items += [
            {
                "dag_id": d,
                "task_id": None,
                "file": None,
                "target": "missing-dag",
                "reason": f"not found in {self.folder}",
                "violations": [f"DAG {d} not found in {self.folder}"],
                "violation_rules": ["missing-dag"],
                "warnings": [],
                "warning_rules": [],
            }
            for d in self.missing_dags
        ]
        items += [
            {
                "dag_id": t.dag_id,
                "task_id": t.task_id,
                "file": t.file,
                "target": t.target,
                "reason": t.reason,
                "violations": [f.message for f in t.violations],
                "violation_rules": [f.rule for f in t.violations],
                "warnings": [f.message for f in t.warnings],
                "warning_rules": [f.rule for f in t.warnings],
            }
            for t in self.tasks
        ]
        return items


def lint_dags(
    settings: Settings,
    folder: Path | None = None,
    *,
    profile: str | None = None,
    dag_ids: Collection[str] | None = None,
    cache: bool = True,
) -> LintReport:
    """Lint every pod task in `folder` (default: settings.dags_folder) under `profile`
    (default: settings.profile); with `dag_ids`, only those DAGs, and import errors only
    matter when one of them is missing (the broken file may be it).

    With `cache`, a project keeps each report under .sandbox/lint-cache/, keyed by everything it
    depends on (see `_cache_key`): an unchanged folder is not re-imported (Airflow's import and
    the DagBag parse are seconds; the key is milliseconds)."""
    folder = (folder or settings.dags_folder).resolve()
    profile = profile or settings.profile
    if profile not in PROFILES:
        raise UsageError(f"unknown profile {profile!r}", hint=f"use one of: {', '.join(PROFILES)}")
    if not folder.is_dir():
        raise UsageError(
            f"DAGs folder {folder} does not exist",
            hint="pass the folder holding your DAG files, e.g. `sandbox lint sample_dags`",
        )
    nodes = declared_nodes(settings, profile=profile)
    # Outside a project there are no task image sources: images resolve the production way.
    planned = planned_images(settings) if any(f.is_dir() for f in settings.images_folders) else None
    cache_file = None
    if cache and is_project(settings.project_dir):
        key = _cache_key(folder, profile, nodes, dag_ids, planned)
        cache_file = settings.state_dir / LINT_CACHE / f"{key}.json"
        cached = _read_cached(cache_file)
        if cached is not None:
            return cached
    with _quiet(), _environment({PROFILE_ENV: profile}):
        report = _lint_folder(folder, profile, nodes, dag_ids, planned)
    if cache_file is not None:
        _write_cached(cache_file, report)
    return report


# -- the cache -----------------------------------------------------------------------------------
LINT_CACHE = "lint-cache"
CACHE_KEEP = 32  # reports kept; older ones are removed when a new one is written
# The code whose behaviour a report reflects: a new tool version invalidates the cache.
_LINT_MODULES = ("lint", "policy", "placement", "pod_render", "cel_k8s", "kind_config")


def _cache_key(
    folder: Path,
    profile: str,
    nodes: Sequence[NodeSpec],
    dag_ids: Collection[str] | None,
    planned: Mapping[str, str] | None,
) -> str:
    """SHA-256 of what a report depends on: every DAG-folder file Airflow may import (.py) or
    that decides what it lists (.airflowignore), by path and content; the profile, the nodes the
    kind config declares, the DAGs asked for, the names of the task images with sources; the
    rules and the lint code itself; the Airflow version. Not covered: what DAG files read from
    the environment.

    Image names, not their content tags: a tag changes with every saved line of step code (the
    inner loop: `watch` rebuilds, then `run-task` lints) but cannot change a verdict — every
    planned ref is `name:<12 hex>`, the image-tag rule sees that shape whatever the hex, and no
    finding's text names a tag."""
    import hashlib

    from sandbox.config import airflow_version
    from sandbox.policy import __file__ as policy_init

    digest = hashlib.sha256()
    header = {
        "folder": str(folder),
        "profile": profile,
        "nodes": [repr(n) for n in nodes],
        "dag_ids": sorted(dag_ids) if dag_ids is not None else None,
        "planned": sorted(planned) if planned is not None else None,
        "airflow": airflow_version(),
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    code = [Path(__file__).with_name(f"{m}.py") for m in _LINT_MODULES] + [Path(policy_init).with_name("aci_rules.yaml")]
    inputs = sorted(p for p in folder.rglob("*") if (p.suffix == ".py" or p.name == ".airflowignore") and "__pycache__" not in p.parts)
    for path in (*code, *inputs):
        digest.update(str(path).encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"<unreadable>")
        digest.update(b"\0")
    return digest.hexdigest()


def _read_cached(path: Path) -> LintReport | None:
    try:
        data = json.loads(path.read_text())
        return LintReport(
            folder=Path(data["folder"]),
            profile=data["profile"],
            tasks=tuple(
                TaskResult(
                    **{k: v for k, v in t.items() if k not in ("violations", "warnings")},
                    violations=tuple(Finding(**f) for f in t["violations"]),
                    warnings=tuple(Finding(**f) for f in t["warnings"]),
                )
                for t in data["tasks"]
            ),
            import_errors=tuple(ImportProblem(**p) for p in data["import_errors"]),
            missing_dags=tuple(data["missing_dags"]),
            dag_count=data["dag_count"],
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent or unreadable: lint again


def _write_cached(path: Path, report: LintReport) -> None:
    from dataclasses import asdict

    from sandbox.state import StateDir

    StateDir(path.parent.parent).ensure()
    path.parent.mkdir(exist_ok=True)
    body = asdict(report)
    body["folder"] = str(report.folder)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(body))
    os.replace(tmp, path)
    old = sorted(path.parent.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)[CACHE_KEEP:]
    for stale in old:
        stale.unlink(missing_ok=True)


def _lint_folder(
    folder: Path,
    profile: str,
    nodes: Sequence[NodeSpec],
    dag_ids: Collection[str] | None,
    planned_images: Mapping[str, str] | None,
) -> LintReport:
    bag = _load(folder, planned_images)
    wanted = set(dag_ids) if dag_ids is not None else None
    missing = tuple(sorted(wanted - set(bag.dags))) if wanted is not None else ()
    problems = tuple(
        ImportProblem(file, _import_summary(file, text)) for file, text in sorted(bag.import_errors.items())
    )
    if wanted is not None and not missing:
        problems = ()
    tasks: list[TaskResult] = []
    dags = [d for dag_id, d in sorted(bag.dags.items()) if wanted is None or dag_id in wanted]
    for dag in dags:
        for task in dag.tasks:
            tasks += _lint_task(dag, task, folder, nodes, profile)
    return LintReport(folder, profile, tuple(tasks), problems, missing, len(dags))


def _lint_task(
    dag: Any, task: Any, folder: Path, nodes: Sequence[NodeSpec], profile: str
) -> list[TaskResult]:
    """The task's own pod, then the pods it makes Spark create (a cluster-mode spark-submit)."""
    from sandbox.core.pod_render import as_admitted, is_pod_task, render_pod
    from sandbox.core.spark_pods import spark_pods

    if not is_pod_task(task):
        return []
    file = _relative(dag.fileloc, folder)
    try:
        rendered = render_pod(task)
    except Exception as exc:  # noqa: BLE001 - any failure of the user's operator is a finding
        message = f"the provider cannot build this task's pod: {type(exc).__name__}: {exc}"
        return [
            TaskResult(
                dag.dag_id, task.task_id, file, "not-rendered", "the pod could not be built",
                (Finding("render", message),),
            )
        ]
    results = [_check_pod(dag.dag_id, task.task_id, file, as_admitted(rendered), nodes, profile)]
    for spark_pod in spark_pods(rendered):
        task_id = f"{task.task_id} → spark {spark_pod.role}"
        if spark_pod.pod is None:
            results.append(
                TaskResult(
                    dag.dag_id, task_id, file, "not-rendered", "the pod template could not be read",
                    (Finding("render", spark_pod.problem),),
                )
            )
            continue
        results.append(_check_pod(dag.dag_id, task_id, file, as_admitted(spark_pod.pod), nodes, profile))
    return results


def _check_pod(
    dag_id: str, task_id: str, file: str, pod: Mapping[str, Any], nodes: Sequence[NodeSpec], profile: str
) -> TaskResult:
    placement = predict(pod, nodes)
    violations: list[Finding] = []
    warnings: list[Finding] = []
    reason = placement.reason
    if placement.target == "unschedulable":
        selector = ", ".join(f"{k}={v}" for k, v in virtual_node_kind(profile).selector.items())
        violations.append(
            Finding(
                "unschedulable",
                f"no sandbox node accepts this pod: to run on the {profile} virtual node select "
                f"{selector} and tolerate {VIRTUAL_NODE_TAINT.key}, to run on a worker drop the "
                "selector or affinity",
            )
        )
    elif placement.reaches_virtual_node:
        verdict = check_pod(pod, profile)
        violations += [Finding(r.id, r.text) for r in verdict.violations]
        violations += [Finding("cel-error", e) for e in verdict.errors]
        warnings += [Finding(r.id, r.text) for r in verdict.warnings]
    else:
        # Say why a worker pod is better off there: what the virtual node would refuse.
        refused = check_pod(pod, profile, assume_matched=True).violations
        if refused:
            reason += f"; the virtual node would refuse it under {profile}: " + ", ".join(
                f"[aci:{r.id}]" for r in refused
            )
    return TaskResult(dag_id, task_id, file, placement.target, reason, tuple(violations), tuple(warnings))


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables while DAG files are parsed (what DAG helpers read), then restore."""
    previous = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def _quiet() -> Iterator[None]:
    """Airflow logs every parsed file and built pod (to stdout, and import tracebacks to
    stderr); the report is the output, so silence both while linting."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
    finally:
        logging.disable(previous)


@contextmanager
def _on_sys_path(folder: Path) -> Iterator[None]:
    """DAG files import helpers next to them, as Airflow's dag processor allows."""
    entry = str(folder)
    added = entry not in sys.path
    if added:
        sys.path.insert(0, entry)
    try:
        yield
    finally:
        if added and entry in sys.path:
            sys.path.remove(entry)


def _load(folder: Path, planned_images: Mapping[str, str] | None) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    record = _planned_image_record(planned_images) if planned_images is not None else contextlib.nullcontext()
    with _on_sys_path(folder), record:
        try:
            return DagBag(dag_folder=folder, bundle_path=folder, load_op_links=False)
        except UnicodeDecodeError as exc:  # Airflow reads .airflowignore files as UTF-8 text
            raise ConfigError(
                f"a file Airflow reads to list {folder} is not UTF-8 text ({exc.reason}); "
                "usually an .airflowignore",
                hint="save the .airflowignore files under the DAG folder as UTF-8",
            ) from None


@contextmanager
def _planned_image_record(planned: Mapping[str, str]) -> Iterator[None]:
    """Let `task_image()` resolve every task image to the tag `sandbox build` would give it
    now, so a DAG folder lints the same before and after a build."""
    with tempfile.TemporaryDirectory(prefix="sandbox-lint-") as tmp:
        record = Path(tmp) / "images.json"
        record.write_text(json.dumps({"images": {n: {"image": r} for n, r in planned.items()}}))
        with _environment({RECORD_ENV: str(record)}):
            yield


def planned_images(settings: Settings) -> dict[str, str]:
    """name -> `name:<context hash>` for every task image, computed without building."""
    from sandbox.core import images

    return {planned.name: planned.ref for planned in images.plan_selected(settings)}


def _relative(path: str | None, folder: Path) -> str:
    if not path:
        return ""
    try:
        return str(Path(path).resolve().relative_to(folder))
    except ValueError:
        return path


def _import_summary(file: str, text: str) -> str:
    """The traceback's last line, with the line of `file` it points at (where to look)."""
    last = last_line(text, "unknown import error")
    name = re.escape(Path(file).name)
    where = re.findall(rf'File "(?:[^"]*/)?{name}", line (\d+)', text)  # that file, not my_{name}
    return f"{last} (line {where[-1]})" if where else last
