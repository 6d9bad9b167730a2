"""Train two candidate models, deploy the better one.

extract -> features -> train_model_a & train_model_b (parallel) -> compare -> deploy_model_a |
deploy_model_b. The heavy steps are pods on the AKS virtual node running CLIs of the `steps`
task image; `compare` is a plain Python branch in the Airflow worker that picks the better model
from the metrics line each train pod printed on stdout, which the worker captured from the pod's
log into the task's `sandbox_metrics` XCom (sandbox_tasks/lineage.py) — no blob read, no exec.
On a fresh sandbox, extract seeds the day's raw measurements (synthetic, seeded by the date).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG, get_current_context, task
from sandbox_tasks import BLOB_CONTAINER, pulled_metrics, stdout_metrics, task_image, virtual_node

DAG_ID = "train_compare_deploy"
DATA = f"{BLOB_CONTAINER}/{DAG_ID}/{{{{ ds }}}}"  # rendered per run
MODELS = ("a", "b")


def step(task_id: str, module: str, source: str, target: str, *extra: str) -> KubernetesPodOperator:
    """One step's pod: `python -m steps.<module> --date <ds> --input ... --output ... [extra]`."""
    return KubernetesPodOperator(
        task_id=task_id,
        image=task_image("steps"),
        cmds=["python", "-m", f"steps.{module}"],
        arguments=[
            "--date", "{{ ds }}",
            "--input", f"{DATA}/{source}",
            "--output", f"{DATA}/{target}",
            *extra,
        ],
        **virtual_node(),
    )


def better_model(metrics: Mapping[str, Mapping[str, Any]]) -> str:
    """The model with the lowest test RMSE; on a tie, the first by name (deterministic)."""
    missing = sorted(name for name, m in metrics.items() if not isinstance(m.get("rmse"), int | float))
    if missing:
        raise ValueError(
            f"no rmse in the metrics of model(s) {', '.join(missing)}: did train print its metrics line?"
        )
    return min(sorted(metrics), key=lambda name: metrics[name]["rmse"])


@task.branch(task_id="compare")
def compare() -> str:
    """Pick the deploy task of the better model, from the metrics both train pods printed."""
    context = get_current_context()
    by_task = pulled_metrics(context, [f"train_model_{m}" for m in MODELS])
    metrics = {name: by_task[f"train_model_{name}"] for name in MODELS}
    winner = better_model(metrics)
    with stdout_metrics(context):
        line: dict[str, Any] = {"step": "compare", "winner": winner}
        line.update({f"rmse_{name}": m["rmse"] for name, m in metrics.items()})
        print(json.dumps(line, sort_keys=True))
    return f"deploy_model_{winner}"


with DAG(
    dag_id=DAG_ID,
    description="train two models on the virtual node, deploy the better one",
    schedule="@daily",
    start_date=pendulum.datetime(2021, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    max_active_tasks=4,
    default_args={
        "retries": 1,
        "retry_delay": timedelta(seconds=30),
        "execution_timeout": timedelta(minutes=30),
    },
    tags=["sample", "virtual-node"],
):
    extract = step("extract", "extract", "raw/measurements.jsonl", "dataset.json")
    features = step("features", "features", "dataset.json", "features.json")
    train = [
        step(f"train_model_{m}", "train", "features.json", f"model_{m}/", "--model", m)
        for m in MODELS
    ]
    chosen = compare()
    deploy = [step(f"deploy_model_{m}", "deploy", f"model_{m}/", "deployment.json") for m in MODELS]

    extract >> features >> train >> chosen >> deploy
