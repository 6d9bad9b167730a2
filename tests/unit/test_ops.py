"""Day-2 operations without a server: the models parsed from recorded Airflow responses
(tests/fixtures/airflow/record.py ops), the concurrency settings as Airflow sees them, the
virtual-node quota manifests against the Kubernetes schemas, and the CLI's checks that refuse
bad input before any request."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from sandbox.adapters.airflow_api import DagRun, TaskInstance, detail_text
from sandbox.core.airflow_config import airflow_env, compose_topology
from sandbox.config import load_settings
from sandbox.core.capacity import CONTAINER_GROUPS_QUOTA, CORES_QUOTA, describe, quota_manifests
from sandbox.core.ops import RunRow
from sandbox.errors import ConfigError
from sandbox.state import Secrets

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "airflow"
K8S_VERSION = "1.37.0"  # the node image's Kubernetes (kind-config.yaml)
SANDBOX = [sys.executable, "-m", "sandbox"]


def load(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def settings_with(tmp_path: Path, toml: str):
    (tmp_path / "sandbox.toml").write_text(toml)
    return load_settings(tmp_path, environ={})


# -- models from recorded responses ---------------------------------------------------------------
def test_clear_dry_run_lists_the_task_and_its_downstream_with_their_run() -> None:
    tis = [TaskInstance.from_json(t) for t in load("clear_dry_run")["task_instances"]]
    assert sorted(ti.task_id for ti in tis) == ["check", "report"]
    assert {ti.state for ti in tis} == {"failed", "upstream_failed"}  # dry run: unchanged
    assert len({ti.run_id for ti in tis}) == 1 and tis[0].run_id.startswith("manual__")
    assert tis[0].logical_date is not None and tis[0].logical_date.isoformat() == "2021-12-01T00:00:00+00:00"


def test_a_real_clear_resets_the_states() -> None:
    tis = [TaskInstance.from_json(t) for t in load("clear_cleared")["task_instances"]]
    assert sorted(ti.task_id for ti in tis) == ["check", "report"]
    assert all(ti.state is None for ti in tis)


def test_mark_answers_with_the_marked_task_and_refuses_unknown_states() -> None:
    [ti] = [TaskInstance.from_json(t) for t in load("ti_marked_failed")["task_instances"]]
    assert (ti.task_id, ti.state, ti.try_number) == ("work", "failed", 0)  # never ran
    refused = load("ti_mark_422")
    assert refused["status"] == 422 and "new_state" in detail_text(refused["body"])


def test_runs_rows_from_the_api_and_a_queued_run_without_start() -> None:
    runs = [DagRun.from_json(r) for r in load("dag_runs_by_state")["dag_runs"]]
    assert runs and all(r.state in ("success", "failed") for r in runs)
    row = RunRow.of(runs[0])
    assert row.duration_s is not None and row.duration_s > 0
    assert set(row.to_json()) == {"run_id", "logical_date", "run_type", "state", "start_date", "duration_s", "metrics"}
    queued = DagRun.from_json(load("dag_run_queued"))
    assert queued.state == "queued" and queued.start_date is None and RunRow.of(queued).duration_s is None


def test_task_ids_and_pause_answers() -> None:
    assert [t["task_id"] for t in load("tasks")["tasks"]] == ["check", "prepare", "report"]  # by id
    assert load("dag_paused")["is_paused"] is True


# -- concurrency caps ---------------------------------------------------------------------------------
def test_caps_default_to_airflows_own_and_reach_every_airflow_process(tmp_path: Path) -> None:
    default = load_settings(tmp_path, environ={})
    env = airflow_env(default, Secrets.generate(), compose_topology(default))
    assert (env["AIRFLOW__CORE__PARALLELISM"], env["AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG"],
            env["AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG"]) == ("32", "16", "16")
    capped = settings_with(tmp_path, "[concurrency]\nmax_active_runs_per_dag = 2\nparallelism = 8\n")
    env = airflow_env(capped, Secrets.generate(), compose_topology(capped))
    assert env["AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG"] == "2" and env["AIRFLOW__CORE__PARALLELISM"] == "8"
    assert env["AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG"] == "16"


def test_airflow_knows_the_keys_and_their_defaults() -> None:
    """The names and defaults above are Airflow's: its own config parser agrees."""
    from airflow.configuration import conf

    for name, value in load_settings(Path("/nonexistent"), environ={}).concurrency.items():
        assert conf.get_default_value("core", name) == str(value)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[concurrency]\nparallelism = 0\n", "at least 1"),
        ("[concurrency]\nparallelism = 2.5\n", "concurrency.parallelism must be a whole number"),
        ("[concurrency]\nmax_runs = 2\n", "unknown setting concurrency.max_runs"),
        ("concurrency = 3\n", "concurrency must be a table"),
        ("[virtual_node_quota]\npods = 1.5\n", "virtual_node_quota.pods must be a whole number"),
        ("[virtual_node_quota]\ncpu = -1\n", "virtual_node_quota.cpu must be a positive number"),
    ],
)
def test_bad_caps_name_the_key(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_with(tmp_path, toml)


# -- the virtual node's quota ----------------------------------------------------------------------
def test_default_quota_is_acis_default_and_schema_valid(tmp_path: Path) -> None:
    manifests = quota_manifests(load_settings(tmp_path, environ={}))
    for manifest in manifests:
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    by_name = {m["metadata"]["name"]: m for m in manifests}
    assert by_name[CONTAINER_GROUPS_QUOTA]["spec"] == {"hard": {"pods": "100"}}
    cores = by_name[CORES_QUOTA]["spec"]
    assert cores["hard"] == {"requests.cpu": "100"}  # no memory budget: ACI has no such quota
    assert cores["scopeSelector"]["matchExpressions"] == [{"scopeName": "NotBestEffort", "operator": "Exists"}]
    assert {m["metadata"]["namespace"] for m in manifests} == {"sandbox-tasks"}


def test_a_configured_budget_renders_kubernetes_quantities(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, "[virtual_node_quota]\npods = 3\ncpu = 2.5\nmemory_gib = 1.5\n")
    manifests = quota_manifests(settings)
    for manifest in manifests:
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    hard = {k: v for m in manifests for k, v in m["spec"]["hard"].items()}
    assert hard == {"pods": "3", "requests.cpu": "2500m", "requests.memory": "1536Mi"}
    assert describe(settings).startswith("3 pods, 2.5 CPU, 1.5 GiB")


def test_a_broken_quota_fails_the_schema(tmp_path: Path) -> None:
    """The schema check can fail: a quota with a misspelt field is refused."""
    [groups, _] = quota_manifests(load_settings(tmp_path, environ={}))
    broken = {**groups, "spec": {"hardLimits": groups["spec"]["hard"]}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


# -- bad input refused before any request --------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["clear", "d"], "give --date, or both --start and --end"),
        (["clear", "d", "--date", "2021-01-01", "--start", "2021-01-01"], "not both"),
        (["clear", "d", "--start", "2021-13-01", "--end", "2021-01-02"], "--start '2021-13-01' is not a valid date"),
        (["mark", "d", "failed", "--date", "nope", "--task", "t"], "--date 'nope' is not a valid date"),
        (["runs", "d", "--last", "0"], "--last"),
    ],
)
def test_cli_refuses_bad_dates_before_connecting(tmp_path: Path, args: list[str], message: str) -> None:
    proc = subprocess.run(
        [*SANDBOX, "-C", str(tmp_path), *args], capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    first = proc.stderr.strip().splitlines()[0]
    assert first.startswith("error:") and message in first
    assert "Traceback" not in proc.stderr
