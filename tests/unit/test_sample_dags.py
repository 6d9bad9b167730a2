"""The sample DAGs as Airflow loads them: structure, placement on the virtual node, rendered pods.

Loaded with Airflow's DagBag in-process (images resolved the production way, through
TASK_IMAGE_REGISTRY/TASK_IMAGE_TAG), and once more in a subprocess that sees the DAG folder the
way Airflow's containers do: the `sandbox` package cannot be imported, the DAG folder is a
bundle on sys.path, and the images come from the sandbox's build record.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.config import Settings
from support import AKS_NODE_SELECTOR, AKS_TOLERATIONS, AKS_V2_NODE_SELECTOR, AKS_V2_TOLERATIONS
from sandbox.core import blob

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "sample_dags"
DATE = "2021-12-01"
EXPECTED_EDGES = {
    "recommend": {
        "preprocess": {"inference"},
        "inference": {"postprocess"},
        "postprocess": set(),
    },
    "train_compare_deploy": {
        "extract": {"features"},
        "features": {"train_model_a", "train_model_b"},
        "train_model_a": {"compare"},
        "train_model_b": {"compare"},
        "compare": {"deploy_model_a", "deploy_model_b"},
        "deploy_model_a": set(),
        "deploy_model_b": set(),
    },
    "spark_etl": {"submit": {"watch_driver"}, "watch_driver": {"report"}, "report": set()},
}
# The DAGs whose pod tasks are `steps` CLIs on the virtual node (spark_etl: test_spark_sample.py).
STEP_DAGS = ("recommend", "train_compare_deploy")
NAMESPACE = os.environ.get("SANDBOX_TASK_NAMESPACE", Settings(project_dir=REPO).task_namespace)
PRODUCTION_ENV = {"TASK_IMAGE_REGISTRY": "registry.example/ml", "TASK_IMAGE_TAG": "2021.12.1"}


def _load(extra_env: dict[str, str] | None = None) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("SANDBOX_PROFILE", raising=False)  # the helper's default unless a test sets it
        for key, value in {**PRODUCTION_ENV, **(extra_env or {})}.items():
            mp.setenv(key, value)
        mp.syspath_prepend(str(DAGS))
        return DagBag(dag_folder=DAGS, bundle_path=DAGS, load_op_links=False)


@pytest.fixture(scope="module")
def dagbag() -> Any:
    return _load()


def pod_tasks(dag: Any) -> list[Any]:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    return [t for t in dag.tasks if isinstance(t, KubernetesPodOperator)]


def rendered_pod(dag: Any, task: Any, ds: str = DATE) -> dict[str, Any]:
    """The V1Pod the operator would send for run date `ds`, as a dict (templates rendered)."""
    from kubernetes.client import ApiClient

    task = copy.deepcopy(task)
    task.render_template_fields({"ds": ds, "dag": dag, "task": task})
    return ApiClient().sanitize_for_serialization(task.build_pod_request_obj(dry_run=True))


def test_the_dags_load_without_import_errors(dagbag: Any) -> None:
    assert dagbag.import_errors == {}
    assert sorted(dagbag.dag_ids) == ["recommend", "spark_etl", "train_compare_deploy"]
    # .airflowignore keeps the helpers and the image sources out of DAG parsing.
    assert sorted(s.file for s in dagbag.dagbag_stats) == [
        "recommend.py",
        "spark_etl.py",
        "train_compare_deploy.py",
    ]


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_EDGES))
def test_tasks_and_dependencies(dagbag: Any, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    edges = {t.task_id: set(t.downstream_task_ids) for t in dag.tasks}
    assert edges == EXPECTED_EDGES[dag_id]


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_EDGES))
def test_schedule_and_concurrency(dagbag: Any, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    assert dag.catchup is False
    assert dag.max_active_runs >= 1 and dag.max_active_tasks >= 1
    assert dag.schedule == "@daily"


def test_depends_on_past_is_configurable() -> None:
    assert all(not t.depends_on_past for t in _load().dags["recommend"].tasks)
    switched = _load({"RECOMMEND_DEPENDS_ON_PAST": "true"}).dags["recommend"]
    assert all(t.depends_on_past for t in switched.tasks)


def test_compare_is_a_worker_branch_and_the_rest_are_pods(dagbag: Any) -> None:
    dag = dagbag.dags["train_compare_deploy"]
    pods = {t.task_id for t in pod_tasks(dag)}
    assert pods == set(EXPECTED_EDGES["train_compare_deploy"]) - {"compare"}
    assert type(dag.get_task("compare")).__name__ == "_BranchPythonDecoratedOperator"
    assert {t.task_id for t in pod_tasks(dagbag.dags["recommend"])} == set(
        EXPECTED_EDGES["recommend"]
    )


def test_branch_picks_the_lower_rmse_and_breaks_ties_by_name(dagbag: Any) -> None:
    compare = dagbag.dags["train_compare_deploy"].get_task("compare")
    better_model = compare.python_callable.__globals__["better_model"]
    assert better_model({"a": {"rmse": 0.3}, "b": {"rmse": 0.1}}) == "b"
    assert better_model({"a": {"rmse": 0.1}, "b": {"rmse": 0.3}}) == "a"
    assert better_model({"b": {"rmse": 0.2}, "a": {"rmse": 0.2}}) == "a"


def _all_pods(dagbag: Any) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for dag_id in STEP_DAGS:
        dag = dagbag.dags[dag_id]
        for task in pod_tasks(dag):
            yield dag_id, task.task_id, rendered_pod(dag, task)


def test_every_pod_task_is_aimed_at_the_virtual_node(dagbag: Any) -> None:
    pods = list(_all_pods(dagbag))
    assert len(pods) == 9
    for dag_id, task_id, pod in pods:
        where = f"{dag_id}.{task_id}"
        assert pod["spec"]["nodeSelector"] == AKS_NODE_SELECTOR, where
        assert pod["spec"]["tolerations"] == AKS_TOLERATIONS, where
        assert pod["metadata"]["namespace"] == NAMESPACE, where


def test_under_aci_v2_every_pod_task_is_aimed_at_virtual_nodes_v2() -> None:
    """SANDBOX_PROFILE (set by `sandbox up` for every Airflow process) picks the v2 selector and
    toleration, as microsoft/virtualnodesOnAzureContainerInstances' README gives them."""
    pods = list(_all_pods(_load({"SANDBOX_PROFILE": "aci-v2"})))
    assert len(pods) == 9
    for dag_id, task_id, pod in pods:
        where = f"{dag_id}.{task_id}"
        assert pod["spec"]["nodeSelector"] == AKS_V2_NODE_SELECTOR, where
        assert pod["spec"]["tolerations"] == AKS_V2_TOLERATIONS, where


def test_the_dag_helper_knows_exactly_the_sandboxs_profiles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(DAGS))
    from sandbox_tasks import pods

    from sandbox.config import PROFILES
    from sandbox.core.kind_config import virtual_node_kind

    assert tuple(pods.PLACEMENT) == PROFILES
    for profile, (selector, _) in pods.PLACEMENT.items():  # the same documented selector as lint's
        assert selector == virtual_node_kind(profile).selector
    assert pods.DEFAULT_PROFILE == Settings(project_dir=REPO).profile
    monkeypatch.setenv("SANDBOX_PROFILE", "aci-v3")
    with pytest.raises(ValueError, match="SANDBOX_PROFILE='aci-v3' names no kind of AKS virtual node: set it to aci-v1 or aci-v2"):
        pods.virtual_node()


def test_the_compose_env_tells_the_dag_helper_the_profile(tmp_path: Path) -> None:
    from sandbox.core.airflow_config import airflow_env, compose_topology
    from sandbox.config import load_settings
    from sandbox.state import Secrets

    for profile in ("aci-v1", "aci-v2"):
        settings = load_settings(tmp_path, environ={"SANDBOX_PROFILE": profile})
        for topology in (compose_topology(settings), compose_topology(settings, with_cluster=False)):
            assert airflow_env(settings, Secrets.generate(), topology)["SANDBOX_PROFILE"] == profile


def test_rendered_pods_follow_the_aci_rules_and_the_blob_contract(dagbag: Any) -> None:
    for dag_id, task_id, pod in _all_pods(dagbag):
        where = f"{dag_id}.{task_id}"
        spec = pod["spec"]
        # One container: no XCom sidecar (ACI v1 cannot run its exec), no init containers.
        assert [c["name"] for c in spec["containers"]] == ["base"], where
        assert not spec.get("initContainers") and not spec.get("volumes"), where
        container = spec["containers"][0]
        assert container["image"] == "registry.example/ml/steps:2021.12.1", where
        assert container["command"][:2] == ["python", "-m"], where
        resources = container["resources"]
        assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}, where
        assert container["env"] == [
            {
                "name": blob.BLOB_ENV,
                "valueFrom": {
                    "secretKeyRef": {"name": blob.BLOB_SECRET_NAME, "key": blob.BLOB_SECRET_KEY}
                },
            }
        ], where


def test_step_command_lines_name_the_run_date_in_every_blob_path(dagbag: Any) -> None:
    commands = {
        (dag_id, task_id): pod["spec"]["containers"][0]["command"]
        + pod["spec"]["containers"][0]["args"]
        for dag_id, task_id, pod in _all_pods(dagbag)
    }
    prefix = f"{blob.BLOB_CONTAINER}/recommend/{DATE}"
    assert commands[("recommend", "inference")] == [
        "python",
        "-m",
        "steps.inference",
        "--date",
        DATE,
        "--input",
        f"{prefix}/features.json",
        "--output",
        f"{prefix}/scores.json",
    ]
    prefix = f"{blob.BLOB_CONTAINER}/train_compare_deploy/{DATE}"
    assert commands[("train_compare_deploy", "train_model_b")] == [
        "python",
        "-m",
        "steps.train",
        "--date",
        DATE,
        "--input",
        f"{prefix}/features.json",
        "--output",
        f"{prefix}/model_b/",
        "--model",
        "b",
    ]
    for command in commands.values():
        paths = [command[i + 1] for i, a in enumerate(command) if a in ("--input", "--output")]
        assert len(paths) == 2 and all(p.startswith(f"{blob.BLOB_CONTAINER}/") for p in paths)
        assert all(f"/{DATE}/" in p for p in paths)


def test_dag_helpers_restate_the_blob_contract_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(DAGS))
    from sandbox_tasks import pods

    assert (pods.BLOB_CONTAINER, pods.BLOB_SECRET_NAME, pods.BLOB_SECRET_KEY, pods.BLOB_ENV) == (
        blob.BLOB_CONTAINER,
        blob.BLOB_SECRET_NAME,
        blob.BLOB_SECRET_KEY,
        blob.BLOB_ENV,
    )


# The DAG folder as the official Airflow image sees it: only the folder (a DAG bundle, put on
# sys.path by BundleDagBag exactly as the dag-processor does) and site-packages; `sandbox` is
# blocked even though this venv has it installed.
CONTAINER_VIEW = r"""
import importlib.abc, json, sys

class NoSandbox(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "sandbox" or name.startswith("sandbox."):
            raise ModuleNotFoundError(f"No module named {name!r} (as in Airflow's containers)")
        return None

sys.meta_path.insert(0, NoSandbox())
try:
    import sandbox
    sys.exit("the sandbox package is importable: the check below would prove nothing")
except ModuleNotFoundError:
    pass

from pathlib import Path
from airflow.dag_processing.dagbag import BundleDagBag

dags = Path(sys.argv[1])
bag = BundleDagBag(
    dag_folder=dags, bundle_path=dags, bundle_name="dags-folder", load_op_links=False
)
tasks = {
    dag_id: {
        t.task_id: [getattr(t, a, None) for a in ("image", "image_pull_policy", "namespace")]
        for t in dag.tasks
    }
    for dag_id, dag in bag.dags.items()
}
leaked = sorted(m for m in sys.modules if m == "sandbox" or m.startswith("sandbox."))
files = sorted(s.file for s in bag.dagbag_stats)
print(json.dumps({"errors": bag.import_errors, "tasks": tasks, "leaked": leaked, "files": files}, default=str))
"""


def test_dag_folder_loads_as_airflow_containers_see_it(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    shutil.copytree(
        DAGS, dags, ignore=shutil.ignore_patterns("images", "__pycache__", ".sandbox-*")
    )
    # The build record `sandbox build` writes into the DAG folder (format of sandbox.core.images).
    record = {
        "version": 1,
        "images": {"steps": {"image": "steps:0123456789ab"}, "spark": {"image": "spark:ba9876543210"}},
    }
    (dags / ".sandbox-images.json").write_text(json.dumps(record))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "PYTHON", "TASK_IMAGE", "SANDBOX_", "RECOMMEND_"))
    }
    env["AIRFLOW_HOME"] = str(tmp_path / "airflow-home")
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    proc = subprocess.run(
        [sys.executable, "-I", "-c", CONTAINER_VIEW, str(dags)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["errors"] == {}
    assert result["leaked"] == []
    assert result["files"] == ["recommend.py", "spark_etl.py", "train_compare_deploy.py"]
    assert {d: set(t) for d, t in result["tasks"].items()} == {
        d: set(e) for d, e in EXPECTED_EDGES.items()
    }
    pod_settings = [v for d in STEP_DAGS for k, v in result["tasks"][d].items() if k != "compare"]
    # Without SANDBOX_TASK_NAMESPACE the pods go to the namespace `sandbox up` creates by default.
    default_namespace = Settings(project_dir=REPO).task_namespace
    assert pod_settings == [["steps:0123456789ab", "IfNotPresent", default_namespace]] * 9
    assert result["tasks"]["spark_etl"]["submit"] == [
        "spark:ba9876543210", "IfNotPresent", default_namespace
    ]


def test_pod_tasks_fail_at_once_without_a_cluster(tmp_path: Path) -> None:
    """In `sandbox up --stack-only` (SANDBOX_CLUSTER=none) a pod task fails before it tries to
    reach a cluster, with the reason and the fix, and is not retried."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "from airflow.sdk.exceptions import AirflowFailException\n"
        "bag = DagBag(dag_folder=sys.argv[1], bundle_path=sys.argv[1], load_op_links=False)\n"
        "task = bag.dags['recommend'].get_task('preprocess')\n"
        "try:\n"  # the task runner calls this hook right before execute()
        "    task._pre_execute_hook({})\n"
        "except AirflowFailException as exc:\n"
        "    print('REFUSED:', exc)\n"
    )
    env = {
        **os.environ,
        "SANDBOX_CLUSTER": "none",
        "TASK_IMAGE_REGISTRY": "registry.example",
        "TASK_IMAGE_TAG": "1",
        "AIRFLOW_HOME": str(tmp_path),
    }
    proc = subprocess.run(
        [sys.executable, "-c", code, str(REPO / "sample_dags")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert "REFUSED:" in proc.stdout, proc.stderr[-2000:]
    assert "sandbox up --stack-only" in proc.stdout and "run `sandbox up`" in proc.stdout
