"""The sample pipelines after a real run on the sandbox (GitHub Actions, after `make up`).

Precondition, as in the e2e workflow: `sandbox run-dag recommend --date 2021-12-01` and
`sandbox run-dag train_compare_deploy --date 2021-12-01` have run before this module. Checked
here: their outputs are in Azurite (its published 127.0.0.1 port), every task pod ran on the
virtual node (kubernetes client, admin kubeconfig, spec.nodeName), only the better model was
deployed, and a second run of `recommend` leaves byte-identical outputs.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from typing import Any

import pytest
from support import REPO, require

from e2e_cluster import DATE, SETTINGS, container, core, outputs, virtual_node  # noqa: F401 - fixtures

OUTPUTS = {
    "recommend": ("raw/interactions.jsonl", "features.json", "scores.json", "recommendations.csv"),
    "train_compare_deploy": (
        "raw/measurements.jsonl",
        "dataset.json",
        "features.json",
        "model_a/model.json",
        "model_a/metrics.json",
        "model_b/model.json",
        "model_b/metrics.json",
        "deployment.json",
    ),
}
POD_TASKS = {
    "recommend": {"preprocess", "inference", "postprocess"},
    "train_compare_deploy": {"extract", "features", "train_model_a", "train_model_b"},
}


@pytest.fixture(scope="module")
def ran(container: Any) -> dict[str, dict[str, bytes]]:
    found = {dag_id: outputs(container, dag_id) for dag_id in OUTPUTS}
    for dag_id, blobs in found.items():
        require(
            bool(blobs),
            f"no outputs of {dag_id} for {DATE}: "
            f"run `sandbox run-dag {dag_id} --date {DATE}` first",
        )
    return found


def task_pods(core: Any, dag_id: str) -> list[Any]:
    """The DAG's task pods for DATE (KPO labels them by dag_id; the date is in their args).

    Unpausing a daily DAG also starts a scheduled run for the latest interval: its pods carry
    another date and are left out.
    """
    pods = core.list_namespaced_pod(SETTINGS.task_namespace, label_selector=f"dag_id={dag_id}")
    return [p for p in pods.items if DATE in (p.spec.containers[0].args or [])]


@pytest.mark.parametrize("dag_id", sorted(OUTPUTS))
def test_outputs_for_the_date_are_in_blob_storage(
    ran: dict[str, dict[str, bytes]], dag_id: str
) -> None:
    assert sorted(ran[dag_id]) == sorted(OUTPUTS[dag_id])


def test_recommendations_are_complete(ran: dict[str, dict[str, bytes]]) -> None:
    rows = list(csv.DictReader(io.StringIO(ran["recommend"]["recommendations.csv"].decode())))
    users = json.loads(ran["recommend"]["features.json"])["users"]
    assert rows and {r["user"] for r in rows} == set(users)
    assert all(r["date"] == DATE and r["item"] not in users[r["user"]] for r in rows)


def test_the_better_model_was_deployed(ran: dict[str, dict[str, bytes]], core: Any) -> None:
    blobs = ran["train_compare_deploy"]
    rmse = {m: json.loads(blobs[f"model_{m}/metrics.json"])["rmse"] for m in "ab"}
    winner = min(sorted(rmse), key=rmse.__getitem__)
    assert json.loads(blobs["deployment.json"])["model"] == winner
    deploy_pods = {
        p.metadata.labels["task_id"]
        for p in task_pods(core, "train_compare_deploy")
        if p.metadata.labels.get("task_id", "").startswith("deploy_model_")
    }
    assert deploy_pods == {f"deploy_model_{winner}"}, "the branch must skip the other deploy"


@pytest.mark.parametrize("dag_id", sorted(POD_TASKS))
def test_every_task_pod_ran_on_the_virtual_node(
    ran: dict[str, dict[str, bytes]], core: Any, dag_id: str
) -> None:
    node = virtual_node(core)
    pods = task_pods(core, dag_id)
    succeeded = {p.metadata.labels.get("task_id") for p in pods if p.status.phase == "Succeeded"}
    assert POD_TASKS[dag_id] <= succeeded
    for pod in pods:  # retried attempts included: every pod must have been placed there
        assert pod.spec.node_name == node, (
            f"{pod.metadata.name} ({pod.metadata.labels.get('task_id')})"
        )


def test_a_second_run_gives_identical_outputs(
    ran: dict[str, dict[str, bytes]], container: Any, core: Any
) -> None:
    before = len(task_pods(core, "recommend"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sandbox",
            "run-dag",
            "recommend",
            "--date",
            DATE,
            "--rerun",
            "--no-logs",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=SETTINGS.timeouts.run,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert outputs(container, "recommend") == ran["recommend"]
    assert len(task_pods(core, "recommend")) >= before + len(POD_TASKS["recommend"]), (
        "nothing re-ran"
    )


def _sandbox_json(*args: str) -> Any:
    proc = subprocess.run(
        [sys.executable, "-m", "sandbox", *args, "--json"], cwd=REPO, capture_output=True, text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.mark.parametrize("dag_id", sorted(POD_TASKS))
def test_every_pod_task_has_a_record_with_the_nodes_image_id_and_metrics(
    ran: dict[str, dict[str, bytes]], core: Any, dag_id: str
) -> None:
    shown = _sandbox_json("show", dag_id, "--date", DATE)
    records = {t["task_id"]: t for t in shown["tasks"] if t["kind"] == "pod"}
    assert POD_TASKS[dag_id] <= set(records)
    assert shown["source"] is not None and len(shown["source"]["commit"]) == 40
    node = virtual_node(core)
    pods = {p.metadata.name: p for p in task_pods(core, dag_id)}
    for task_id in POD_TASKS[dag_id]:
        record = records[task_id]
        pod = pods[record["pod"]["name"]]  # the record names the pod that really ran
        [status] = pod.status.container_statuses
        assert record["image"]["id"] == status.image_id and record["image"]["id"]
        assert record["node"] == {"name": node, "virtual": True}
        assert record["container"]["args"] == pod.spec.containers[0].args
        assert record["exit_code"] == 0 and record["warnings"] == []
        assert record["metrics"]["step"] == record["container"]["command"][2].removeprefix("steps.")
        assert "kubectl create -o name -f -" in record["rerun"]


def test_compare_shows_model_a_against_b_for_the_run(ran: dict[str, dict[str, bytes]]) -> None:
    body = _sandbox_json("compare", "train_compare_deploy", "--metric", "rmse", "--last", "5")
    [run] = [r for r in body["runs"] if r["logical_date"].startswith(DATE)]
    blobs = ran["train_compare_deploy"]
    for m in "ab":  # the captured line equals what train wrote next to the model
        assert run["metrics"][f"train_model_{m}"]["rmse"] == json.loads(blobs[f"model_{m}/metrics.json"])["rmse"]
    assert body["best"]["rmse"]["task"] == "train_model_" + json.loads(blobs["deployment.json"])["model"]
