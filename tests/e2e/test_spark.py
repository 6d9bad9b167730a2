"""spark_etl on the real sandbox (GitHub Actions, after `make up`).

Precondition, as in the e2e workflow: `sandbox run-dag spark_etl --date 2021-12-01` has run.
Checked here: the job's outputs are in Azurite; the submit pod ran on an ordinary worker, the
driver (spark-role=driver) and its executors (spark-role=executor, kept by
spark.kubernetes.executor.deleteOnTermination=false) on the virtual node; a run made to fail
(`--conf '{"fail": true}'`) fails `watch_driver` with the driver's reason and log tail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from support import REPO, require
from e2e_cluster import SETTINGS, container, core, outputs, virtual_node  # noqa: F401 - fixtures

DATE = "2021-12-01"
FAILING_DATE = "2021-12-02"
NS = SETTINGS.task_namespace


def driver_pods(core: Any, date: str) -> list[Any]:  # noqa: F811 - the fixture's value
    pods = core.list_namespaced_pod(NS, label_selector="spark-role=driver").items
    return [p for p in pods if p.metadata.name.startswith(f"spark-etl-{date.replace('-', '')}-")]


@pytest.fixture(scope="module")
def ran(container: Any) -> dict[str, bytes]:  # noqa: F811
    found = outputs(container, "spark_etl")
    require(bool(found), f"no outputs of spark_etl for {DATE}: run `sandbox run-dag spark_etl --date {DATE}` first")
    return found


def test_outputs_for_the_date_are_in_blob_storage(ran: dict[str, bytes]) -> None:
    assert sorted(ran) == ["raw/orders.jsonl", "sales_by_store_category.csv", "summary.json"]
    summary = json.loads(ran["summary.json"])
    assert summary["date"] == DATE and summary["orders"] == 2000 and summary["groups"] == 40


def test_driver_and_executors_ran_on_the_virtual_node_and_submit_did_not(ran: dict[str, bytes], core: Any) -> None:  # noqa: F811
    node = virtual_node(core)
    drivers = driver_pods(core, DATE)
    succeeded = [d for d in drivers if d.status.phase == "Succeeded"]
    assert succeeded, [(d.metadata.name, d.status.phase) for d in drivers]
    for driver in drivers:
        assert driver.spec.node_name == node, driver.metadata.name
        app = driver.metadata.labels["spark-app-selector"]
        executors = core.list_namespaced_pod(NS, label_selector=f"spark-role=executor,spark-app-selector={app}").items
        assert executors, f"no executor pods of {driver.metadata.name}"
        assert {e.spec.node_name for e in executors} == {node}
    submits = core.list_namespaced_pod(NS, label_selector="dag_id=spark_etl,task_id=submit").items
    assert submits and all(p.spec.node_name != node for p in submits)


def test_a_failing_job_fails_the_sensor_with_the_drivers_reason(core: Any) -> None:  # noqa: F811
    proc = subprocess.run(
        [sys.executable, "-m", "sandbox", "run-dag", "spark_etl", "--date", FAILING_DATE,
         "--conf", json.dumps({"fail": True}), "--rerun", "--no-logs"],
        cwd=REPO, capture_output=True, text=True, timeout=SETTINGS.timeouts.run,
    )
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "watch_driver" in proc.stdout
    assert "terminated: Error, exit code 1" in proc.stdout
    assert "failing on purpose (--fail true)" in proc.stdout
    assert all(d.status.phase == "Failed" for d in driver_pods(core, FAILING_DATE))
