"""train a & b -> compare -> deploy the better: the capture path of sandbox_tasks.lineage in a
real worker, with the cluster as the only stand-in.

Each train task runs a real subprocess that prints like a step (plain text, a progress object,
a malformed `{` line, the final metrics), feeds its stdout lines to
`MetricsCapture.progress_callback` exactly as the provider's PodManager does for a followed pod
log, then calls `MetricsCapture.on_pod_completion` with a real KubernetesPodOperator and the pod
the API server returned (the recorded fixture named by conf["pod_json"]), so the XComs go
through the real Task SDK into the metadata database. `compare` picks the winner from those
XComs and records its own line with `stdout_metrics()`. conf: rmse_a, rmse_b, pod_json.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from types import SimpleNamespace

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG, get_current_context, task
from sandbox_tasks import pulled_metrics, stdout_metrics, virtual_node
from sandbox_tasks.lineage import MetricsCapture

PRINTS = """
import json, sys
print("loading features")
print(json.dumps({"epoch": 1, "loss": 0.9}))
print("{not json")
print(json.dumps({"model": sys.argv[1], "rmse": float(sys.argv[2]), "r2": 0.5}))
"""


def _pod(task_id: str, model: str, ds: str, conf: dict) -> object:
    from kubernetes.client import ApiClient

    data = json.loads(open(conf["pod_json"]).read())
    data["metadata"]["name"] = f"{task_id.replace('_', '-')}-{ds}"
    args = data["spec"]["containers"][0]["args"]
    args[args.index("--model") + 1] = model
    args[args.index("--date") + 1] = ds
    return ApiClient().deserialize(SimpleNamespace(data=json.dumps(data)), "V1Pod")


def _train(model: str) -> None:
    context = get_current_context()
    conf = context["dag_run"].conf
    task_id = context["ti"].task_id
    pod = _pod(task_id, model, context["ds"], conf)
    operator = KubernetesPodOperator(
        task_id=task_id, image="sandbox.local/steps:3f9c2a1b7d4e",
        cmds=["python", "-m", "steps.train"], arguments=["--model", model], **virtual_node(),
    )
    out = subprocess.run(
        [sys.executable, "-c", PRINTS, model, str(conf[f"rmse_{model}"])],
        capture_output=True, text=True, check=True,
    ).stdout
    for line in out.splitlines():
        MetricsCapture.progress_callback(
            line=line, client=None, mode="sync", container_name="base", timestamp=None, pod=pod
        )
    MetricsCapture.on_pod_completion(pod=pod, client=None, mode="sync", operator=operator, context=context)


# Retries: on a machine at load 20 a task process can miss its heartbeats and be failed by the
# scheduler; a retry is a new try with a record of its own, which is what the records are for.
with DAG(
    "sbx_metrics", schedule=None, start_date=datetime(2021, 1, 1), catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=1)},
):

    @task
    def train_model_a() -> None:
        _train("a")

    @task
    def train_model_b() -> None:
        _train("b")

    @task.branch
    def compare() -> str:
        context = get_current_context()
        metrics = pulled_metrics(context, ["train_model_a", "train_model_b"])
        winner = min(("a", "b"), key=lambda m: metrics[f"train_model_{m}"]["rmse"])
        with stdout_metrics(context):
            print(json.dumps({"winner": winner, "margin": abs(metrics["train_model_a"]["rmse"] - metrics["train_model_b"]["rmse"])}))
        return f"deploy_model_{winner}"

    @task
    def deploy_model_a() -> None:
        pass

    @task
    def deploy_model_b() -> None:
        pass

    [train_model_a(), train_model_b()] >> compare() >> [deploy_model_a(), deploy_model_b()]
