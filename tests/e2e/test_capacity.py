"""The virtual node's ACI quota in the real cluster (GitHub Actions, after `make up`).

`up` applied the ResourceQuotas sandbox.core.capacity renders; here the quota on container groups
is tightened for a while (and the rendered one applied again after): a pod over it is refused at
creation, an over-parallel backfill of `recommend` has pod tasks refused with the quota's message
(as ACI refuses container groups on AKS: the task fails at pod start, retries are its only second
chance), and the same backfill capped to one run at a time passes with no task refused.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import REPO

from sandbox.adapters.airflow_api import AirflowApi
from sandbox.adapters.kube import FIELD_MANAGER
from sandbox.config import load_settings
from sandbox.core.capacity import CONTAINER_GROUPS_QUOTA, quota_manifests
from sandbox.state import ADMIN_USER, StateDir

SETTINGS = load_settings(REPO)
NS = SETTINGS.task_namespace
SANDBOX = str(Path(sys.executable).parent / "sandbox")
REFUSED = f"exceeded quota: {CONTAINER_GROUPS_QUOTA}"


def test_up_applied_the_rendered_quotas(kubectl) -> None:
    for manifest in quota_manifests(SETTINGS):
        name = manifest["metadata"]["name"]
        live = json.loads(kubectl("get", "resourcequota", name, "-n", NS, "-o", "json").stdout)
        assert live["spec"]["hard"] == manifest["spec"]["hard"]
        assert live["spec"].get("scopeSelector") == manifest["spec"].get("scopeSelector")


@pytest.fixture
def container_groups(kubectl) -> Iterator[Any]:
    """Sets the container-group budget for the test; the rendered quota is applied again after."""

    def limit(pods: int) -> None:
        patch = json.dumps({"spec": {"hard": {"pods": str(pods)}}})
        kubectl("patch", "resourcequota", CONTAINER_GROUPS_QUOTA, "-n", NS, "--type=merge", "-p", patch)

    yield limit
    for manifest in quota_manifests(SETTINGS):
        kubectl(
            "apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "--force-conflicts", "-f", "-",
            input=json.dumps(manifest),
        )


def test_a_pod_over_the_quota_is_refused_at_creation(kubectl, container_groups) -> None:
    container_groups(0)
    pod = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sbx-quota-probe", "namespace": NS},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1.36"}]},
    }
    refused = kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
    assert refused.returncode != 0 and REFUSED in refused.stderr


def _backfill(start: str, end: str, max_active_runs: int) -> dict[str, Any]:
    proc = subprocess.run(
        [SANDBOX, "-C", str(REPO), "backfill", "recommend", "--start", start, "--end", end,
         "--max-active-runs", str(max_active_runs), "--json"],
        capture_output=True, text=True, timeout=1800,
    )
    print(proc.stdout, proc.stderr)
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)


def _tries(result: dict[str, Any]) -> list[tuple[str, int, list[str]]]:
    """(task, try_number, first try's log lines) of every pod task of the backfill's runs."""
    secrets = StateDir(SETTINGS.state_dir).secrets()
    found = []
    with AirflowApi(SETTINGS.api_url, ADMIN_USER, secrets.admin_password) as api:
        for run in result["runs"]:
            for ti in api.task_instances("recommend", run["run_id"]):
                if ti.runs_in_a_pod and ti.try_number >= 1:
                    log = api.task_log("recommend", run["run_id"], ti.task_id, 1)
                    found.append((ti.task_id, ti.try_number, list(log.lines)))
    return found


def test_over_parallel_backfill_is_refused_and_the_capped_one_passes(container_groups) -> None:
    container_groups(1)  # one container group left in the subscription's quota
    over = _backfill("2022-01-01", "2022-01-03", max_active_runs=3)
    tries = _tries(over)
    refused = [task for task, _, lines in tries if any(REFUSED in line for line in lines)]
    assert refused, "three runs at once asked for three pods; the quota admits one"
    assert not over["ok"] or any(number > 1 for _, number, _ in tries)  # failed, or saved by a retry

    capped = _backfill("2022-02-01", "2022-02-03", max_active_runs=1)
    assert capped["ok"] is True
    assert all(number == 1 for _, number, _ in _tries(capped))  # no task was refused
