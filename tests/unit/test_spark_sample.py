"""The spark_etl sample without a cluster: the submit pod as the provider renders it, the submit
wrapper with spark-submit standing in at its process boundary, the Spark pods `sandbox lint`
derives and checks (v1 and v2), and the driver sensor against recorded driver pods served over
HTTP by a recording fake of the Kubernetes API (tests/kube_http.py), through the provider's own
hook and trigger.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kube_http import kubeconfig, serving
from support import AKS_NODE_SELECTOR, AKS_TOLERATIONS, REPO

from sandbox.config import load_settings
from sandbox.core.lint import lint_dags
from sandbox.core.policy import check_pod
from sandbox.core.spark_pods import spark_pods

DAGS = REPO / "sample_dags"
JOB = DAGS / "images" / "spark"
FIXTURES = REPO / "tests" / "fixtures" / "kube"
DATE = "2021-12-01"
NS = "sandbox-tasks"
DRIVER = "spark-etl-20211201-3f2a9c1b-1-driver"
PRODUCTION_ENV = {"TASK_IMAGE_REGISTRY": "registry.example/ml", "TASK_IMAGE_TAG": "2021.12.1"}


@pytest.fixture(scope="module")
def dag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    with pytest.MonkeyPatch.context() as mp:
        for key, value in PRODUCTION_ENV.items():
            mp.setenv(key, value)
        mp.syspath_prepend(str(DAGS))
        bag = DagBag(dag_folder=DAGS / "spark_etl.py", bundle_path=DAGS, load_op_links=False)
    assert bag.import_errors == {}
    return bag.dags["spark_etl"]


@pytest.fixture(scope="module")
def spark(dag: Any) -> Any:
    """sandbox_tasks.spark as the DAG imported it."""
    return sys.modules["sandbox_tasks.spark"]


def rendered(dag: Any, task_id: str, **params: Any) -> dict[str, Any]:
    from kubernetes.client import ApiClient

    task = copy.deepcopy(dag.get_task(task_id))
    context = {
        "ds": DATE, "ds_nodash": DATE.replace("-", ""), "run_id": "manual__2021-12-01T00:00:00+00:00",
        "ti": type("TI", (), {"try_number": 1})(), "params": {"fail": False, **params},
        "dag": dag, "task": task,
    }
    task.render_template_fields(context)
    return ApiClient().sanitize_for_serialization(task.build_pod_request_obj(dry_run=True))


def fixture_pod(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"spark-driver-{name}.json").read_text())


# ---- the DAG and the submit pod ---------------------------------------------------------------


def test_submit_watch_report_with_the_driver_handed_over_by_xcom(dag: Any) -> None:
    edges = {t.task_id: set(t.downstream_task_ids) for t in dag.tasks}
    assert edges == {"submit": {"watch_driver"}, "watch_driver": {"report"}, "report": set()}
    assert dag.get_task("submit").do_xcom_push is True
    sensor = dag.get_task("watch_driver")
    assert sensor.deferrable is True and sensor.retries == 0
    assert type(sensor).__name__ == "SparkDriverSensor"


def test_submit_pod_runs_spark_submit_in_cluster_mode_without_waiting(dag: Any) -> None:
    pod = rendered(dag, "submit")
    spec = pod["spec"]
    base = spec["containers"][0]
    assert base["image"] == "registry.example/ml/spark:2021.12.1"
    assert base["command"] == ["python3", "-m", "sparkjob.submit"]
    args = base["args"]
    assert args[:4] == ["--xcom", "/airflow/xcom/return.json", "--", "--master"]
    assert args[4] == "k8s://https://kubernetes.default.svc:443"
    assert args[args.index("--deploy-mode") + 1] == "cluster"
    conf = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--conf")
    assert conf["spark.kubernetes.submission.waitAppCompletion"] == "false"
    assert conf["spark.kubernetes.authenticate.driver.serviceAccountName"] == "spark-driver"
    assert conf["spark.kubernetes.container.image"] == "registry.example/ml/spark:2021.12.1"
    assert re.fullmatch(r"spark-etl-20211201-[0-9a-f]{8}-1-driver", conf["spark.kubernetes.driver.pod.name"])
    assert len(conf["spark.kubernetes.driver.pod.name"]) <= 63
    assert args[-9:] == [
        "local:///opt/sandbox/sparkjob/etl.py",
        "--date", DATE,
        "--input", f"sandbox/spark_etl/{DATE}/raw/orders.jsonl",
        "--output", f"sandbox/spark_etl/{DATE}/",
        "--fail", "false",
    ]
    assert rendered(dag, "submit", fail=True)["spec"]["containers"][0]["args"][-1] == "true"
    # Its own least-privilege account, the XCom sidecar, and no virtual-node toleration.
    assert spec["serviceAccountName"] == "spark-submit"
    assert [c["name"] for c in spec["containers"]] == ["base", "airflow-xcom-sidecar"]
    assert not spec.get("tolerations") and not spec.get("nodeSelector")


def test_pod_templates_put_driver_and_executors_on_the_virtual_node(dag: Any) -> None:
    env = {e["name"]: e["value"] for e in rendered(dag, "submit")["spec"]["containers"][0]["env"]}
    for role, name in (("DRIVER", "spark-kubernetes-driver"), ("EXECUTOR", "spark-kubernetes-executor")):
        template = json.loads(env[f"SPARK_{role}_POD_TEMPLATE"])
        assert template["spec"]["nodeSelector"] == AKS_NODE_SELECTOR
        assert template["spec"]["tolerations"] == AKS_TOLERATIONS
        [container] = template["spec"]["containers"]
        assert container["name"] == name and container["command"] == ["/opt/entrypoint.sh"]
    driver = json.loads(env["SPARK_DRIVER_POD_TEMPLATE"])["spec"]["containers"][0]
    assert driver["env"] == [
        {"name": "AZURE_STORAGE_CONNECTION_STRING",
         "valueFrom": {"secretKeyRef": {"name": "sandbox-blob", "key": "connection_string"}}}
    ]


# ---- the Spark pods lint derives --------------------------------------------------------------


def test_spark_pods_are_built_as_spark_builds_them(dag: Any) -> None:
    driver, executor = spark_pods(rendered(dag, "submit"))
    assert (driver.role, executor.role) == ("driver", "executor")
    d = driver.pod["spec"]
    [container] = d["containers"]
    # BasicDriverFeatureStep: request cores from spark.kubernetes.driver.request.cores, limit from
    # ...limit.cores, memory 512m + max(0.4 x 512, 384) MiB for a Python application.
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "896Mi"}, "limits": {"cpu": "1", "memory": "896Mi"}
    }
    assert container["command"] == ["/opt/entrypoint.sh"] and container["args"][0] == "driver"
    assert d["serviceAccountName"] == "spark-driver" and d["restartPolicy"] == "Never"
    assert {v["name"] for v in d["volumes"]} == {"spark-local-dir-1", "spark-conf-volume-driver", "pod-template-volume"}
    assert driver.pod["metadata"]["labels"]["spark-role"] == "driver"
    assert executor.pod["spec"]["containers"][0]["args"] == ["executor"]
    assert executor.pod["spec"]["serviceAccountName"] == "spark-driver"  # executors fall back to it


def test_the_recorded_driver_pod_matches_the_derived_one(dag: Any) -> None:
    """The hand-written fixture (a driver as Spark creates it) and lint's model agree on what
    the ACI rules read: resources, command, placement."""
    derived = spark_pods(rendered(dag, "submit"))[0].pod["spec"]
    recorded = fixture_pod("running")["spec"]
    for key in ("nodeSelector", "restartPolicy", "serviceAccountName"):
        assert derived[key] == recorded[key], key
    assert derived["containers"][0]["resources"] == recorded["containers"][0]["resources"]
    assert derived["containers"][0]["command"] == recorded["containers"][0]["command"]


def test_a_template_without_command_is_refused_by_aci(dag: Any) -> None:
    pod = rendered(dag, "submit")
    for env in pod["spec"]["containers"][0]["env"]:
        if env["name"].endswith("_POD_TEMPLATE"):
            template = json.loads(env["value"])
            del template["spec"]["containers"][0]["command"]
            env["value"] = json.dumps(template)
    for spark_pod in spark_pods(pod):
        verdict = check_pod(spark_pod.pod, "aci-v1")
        assert [r.id for r in verdict.violations] == ["command-with-args"], spark_pod.role


def test_a_template_lint_cannot_read_is_a_finding(dag: Any) -> None:
    pod = rendered(dag, "submit")
    base = pod["spec"]["containers"][0]
    base["env"] = [e for e in base["env"] if e["name"] != "SPARK_EXECUTOR_POD_TEMPLATE"]
    driver, executor = spark_pods(pod)
    assert driver.pod is not None and executor.pod is None
    assert "SPARK_EXECUTOR_POD_TEMPLATE" in executor.problem


@pytest.fixture(scope="module", params=["aci-v1", "aci-v2"])
def lint_report(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    settings = load_settings(REPO, environ={})
    return lint_dags(settings, DAGS, profile=request.param, dag_ids={"spark_etl"})


def test_lint_checks_submit_driver_and_executors(lint_report: Any) -> None:
    by_task = {t.task_id: t for t in lint_report.tasks}
    assert set(by_task) == {"submit", "submit → spark driver", "submit → spark executor"}
    assert lint_report.ok and lint_report.violation_count == 0
    submit = by_task["submit"]
    assert submit.target == "worker"
    if lint_report.profile == "aci-v1":  # why the submit pod stays on an ordinary node
        assert "the virtual node would refuse it under aci-v1: [aci:no-xcom-sidecar]" in submit.reason
    else:
        assert "would refuse" not in submit.reason
    for role in ("driver", "executor"):
        result = by_task[f"submit → spark {role}"]
        assert result.target == "virtual-node", result.reason
        # Spark passes the pod IP through the downward API: a warning on ACI, said plainly.
        assert [w.rule for w in result.warnings] == ["downward-api-ignored"]


# ---- the submit wrapper (spark-submit stands in at the process boundary) ----------------------


def _fake_spark_home(tmp_path: Path, exit_code: int) -> Path:
    home = tmp_path / "spark"
    (home / "bin").mkdir(parents=True)
    script = home / "bin" / "spark-submit"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{tmp_path}/argv"\nexit {exit_code}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return home


def _submit(tmp_path: Path, exit_code: int, *conf: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SPARK_HOME": str(_fake_spark_home(tmp_path, exit_code)),
        "SPARK_DRIVER_POD_TEMPLATE": '{"kind": "Pod", "spec": {"containers": [{"name": "d"}]}}',
        "SPARK_EXECUTOR_POD_TEMPLATE": '{"kind": "Pod", "spec": {"containers": [{"name": "e"}]}}',
        "PYTHONPATH": str(JOB),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    argv = ["--master", "k8s://https://kubernetes.default.svc:443", "--deploy-mode", "cluster"]
    for item in conf:
        argv += ["--conf", item]
    return subprocess.run(
        [sys.executable, "-m", "sparkjob.submit", "--xcom", str(tmp_path / "xcom" / "return.json"), "--", *argv, "local:///job.py"],
        env=env, capture_output=True, text=True, timeout=60,
    )


GOOD_CONF = (
    f"spark.kubernetes.namespace={NS}",
    f"spark.kubernetes.driver.pod.name={DRIVER}",
    "spark.kubernetes.submission.waitAppCompletion=false",
)


def test_submit_writes_templates_runs_spark_submit_and_pushes_the_driver(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    proc = _submit(
        tmp_path, 0, *GOOD_CONF,
        f"spark.kubernetes.driver.podTemplateFile={templates}/driver.json",
        f"spark.kubernetes.executor.podTemplateFile={templates}/executor.json",
    )
    assert proc.returncode == 0, proc.stderr
    expected = {"driver_pod": DRIVER, "namespace": NS, "submission_id": f"{NS}:{DRIVER}"}
    assert json.loads((tmp_path / "xcom" / "return.json").read_text()) == expected
    assert json.loads(proc.stdout) == expected
    assert json.loads((templates / "executor.json").read_text())["spec"]["containers"][0]["name"] == "e"
    argv = (tmp_path / "argv").read_text().splitlines()
    assert argv[:4] == ["--master", "k8s://https://kubernetes.default.svc:443", "--deploy-mode", "cluster"]
    assert argv[-1] == "local:///job.py"


def test_a_failed_submission_pushes_nothing(tmp_path: Path) -> None:
    proc = _submit(tmp_path, 3, *GOOD_CONF)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == "error: spark-submit exited with 3 (its output is above)"
    assert not (tmp_path / "xcom" / "return.json").exists()


def test_submit_refuses_to_wait_for_the_application(tmp_path: Path) -> None:
    proc = _submit(tmp_path, 0, *GOOD_CONF[:2])
    assert proc.returncode == 1
    assert "waitAppCompletion=false" in proc.stderr and not (tmp_path / "argv").exists()


# ---- the driver sensor against recorded pods over HTTP ----------------------------------------


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Serve a sequence of recorded driver pods; Airflow's kubernetes_default points at it."""

    def start(*names: str):
        ctx = serving(
            {(NS, DRIVER): [fixture_pod(n) for n in names]},
            {(NS, DRIVER): (FIXTURES / "spark-driver-failed.log").read_text()},
        )
        url, fake = ctx.__enter__()
        config = kubeconfig(url, tmp_path / "kubeconfig")
        monkeypatch.setenv(
            "AIRFLOW_CONN_KUBERNETES_DEFAULT",
            json.dumps({"conn_type": "kubernetes", "extra": {"kube_config_path": str(config), "namespace": NS}}),
        )
        started.append(ctx)
        return fake

    started: list[Any] = []
    yield start
    for ctx in started:
        ctx.__exit__(None, None, None)


def sensor(spark: Any, **kwargs: Any) -> Any:
    return spark.SparkDriverSensor(task_id="watch_driver", driver_pod=DRIVER, namespace=NS, **kwargs)


def test_poke_waits_while_pending_and_running_then_succeeds(spark: Any, api: Any) -> None:
    fake = api("pending", "running", "succeeded")
    watch = sensor(spark, deferrable=False)
    assert [watch.poke({}) for _ in range(3)] == [False, False, True]
    assert [(m, p) for m, p, _ in fake.requests] == [("GET", f"/api/v1/namespaces/{NS}/pods/{DRIVER}")] * 3


def test_a_failed_driver_fails_the_sensor_with_its_reason_and_log_tail(spark: Any, api: Any) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    fake = api("running", "failed")
    watch = sensor(spark, deferrable=False)
    assert watch.poke({}) is False
    with pytest.raises(AirflowFailException) as failure:
        watch.poke({})
    message = str(failure.value)
    assert f"Spark driver {NS}/{DRIVER} Failed" in message
    assert "container spark-kubernetes-driver terminated: Error, exit code 1" in message
    assert message.endswith("log tail: error: failing on purpose (--fail true) after reading 2000 orders")
    method, path, query = fake.requests[-1]
    assert path == f"/api/v1/namespaces/{NS}/pods/{DRIVER}/log"
    assert query["container"] == ["spark-kubernetes-driver"] and query["tailLines"] == ["30"]


def test_an_image_the_node_cannot_pull_fails_at_once(spark: Any, api: Any) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    api("image-pull")
    with pytest.raises(AirflowFailException, match="waiting: ErrImagePull; failed to pull"):
        sensor(spark, deferrable=False).poke({})


def test_a_missing_driver_is_an_api_error_not_a_success(spark: Any, api: Any) -> None:
    from kubernetes.client.exceptions import ApiException

    api("running")
    with pytest.raises(ApiException) as error:
        spark.SparkDriverSensor(task_id="w", driver_pod="nope", namespace=NS, deferrable=False).poke({})
    assert error.value.status == 404


def test_deferral_uses_the_providers_trigger_so_the_triggerer_needs_no_dag_code(spark: Any) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    with pytest.raises(TaskDeferred) as deferred:
        sensor(spark).execute({})
    classpath, kwargs = deferred.value.trigger.serialize()
    assert classpath == "airflow.providers.cncf.kubernetes.triggers.pod.KubernetesPodTrigger"
    assert (kwargs["pod_name"], kwargs["pod_namespace"]) == (DRIVER, NS)
    assert kwargs["base_container_name"] == "spark-kubernetes-driver"
    assert kwargs["on_kill_action"] == "keep_pod" and kwargs["get_logs"] is False
    assert deferred.value.method_name == "execute_complete"


def test_the_trigger_reports_the_finished_driver_from_the_api(spark: Any, api: Any) -> None:
    """The provider's trigger itself (kubernetes_asyncio) against the same recorded pods."""
    from airflow.sdk.exceptions import TaskDeferred

    api("running", "succeeded")
    with pytest.raises(TaskDeferred) as deferred:
        sensor(spark, poke_interval=0.05).execute({})

    async def first_event() -> Any:
        async for event in deferred.value.trigger.run():
            return event.payload

    payload = asyncio.run(asyncio.wait_for(first_event(), timeout=30))
    assert (payload["status"], payload["name"]) == ("success", DRIVER)


def test_after_the_trigger_the_pod_decides(spark: Any, api: Any) -> None:
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    api("succeeded")
    assert sensor(spark).execute_complete({}, {"status": "success"})["phase"] == "Succeeded"
    api("failed")  # a trigger "success" (container terminated) on a failed driver is a failure
    with pytest.raises(AirflowFailException, match="exit code 1"):
        sensor(spark).execute_complete({}, {"status": "success"})
    api("running")  # the trigger gave up (startup timeout) while the driver still runs
    with pytest.raises(AirflowException, match="ended with timeout: Pod took too long"):
        sensor(spark).execute_complete({}, {"status": "timeout", "message": "Pod took too long"})


def test_driver_state_of_every_recorded_phase(spark: Any) -> None:
    from kubernetes.client import ApiClient

    def state(name: str) -> Any:
        response = type("R", (), {"data": (FIXTURES / f"spark-driver-{name}.json").read_text()})()
        found = spark.driver_state(ApiClient().deserialize(response, "V1Pod"))
        return (found.phase, found.finished, found.succeeded)

    assert state("pending") == ("Pending", False, False)
    assert state("running") == ("Running", False, False)
    assert state("succeeded") == ("Succeeded", True, True)
    assert state("failed") == ("Failed", True, False)
    assert state("image-pull") == ("Pending", True, False)
