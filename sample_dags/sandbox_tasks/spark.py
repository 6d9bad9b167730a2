"""Spark on Kubernetes from Airflow without Spark in Airflow's image: submit pod + driver sensor.

- `spark_submit(...)`: a KubernetesPodOperator whose pod runs `spark-submit` in cluster mode
  with spark.kubernetes.submission.waitAppCompletion=false and pushes the driver's coordinates
  to XCom (`{"driver_pod", "namespace", "submission_id"}`, written by the `spark` image's
  `sparkjob.submit` to /airflow/xcom/return.json). The submit pod runs on an ordinary node:
  the XCom sidecar needs an exec with arguments, which AKS virtual nodes (v1) refuse.
- `spark_pod_template(role)`: the driver and executor pod templates
  (spark.kubernetes.{driver,executor}.podTemplateFile) with the virtual node's selector and
  tolerations, so the pods Spark creates run on the virtual node. They travel in the submit pod's
  environment, so `sandbox lint` reads and checks them like any pod task.
- `SparkDriverSensor`: follows the driver pod's phase until Succeeded (done) or Failed (the task
  fails with the driver's reason and the tail of its log). Deferrable by default: the
  cncf.kubernetes provider's KubernetesPodTrigger waits on the triggerer, so the triggerer needs
  nothing from this folder; `deferrable=False` pokes from a worker instead.

Spark's names used here (docs/running-on-kubernetes.md, Spark 4.1): the driver container is
`spark-kubernetes-driver` and executors' `spark-kubernetes-executor` (Constants.scala
DEFAULT_DRIVER_CONTAINER_NAME / DEFAULT_EXECUTOR_CONTAINER_NAME), the submission id is
`<namespace>:<driver pod name>`, and Spark labels the driver `spark-role=driver`.

Only stdlib, Airflow, the provider and the kubernetes models (the `sandbox` package is not
installed in Airflow's containers).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import BaseSensorOperator
from kubernetes.client import models as k8s

from sandbox_tasks.images import task_image_pull_policy
from sandbox_tasks.pods import (
    BLOB_ENV,
    BLOB_SECRET_KEY,
    BLOB_SECRET_NAME,
    NO_CLUSTER,
    ON_FINISH_ACTION,
    TASK_NAMESPACE,
    placement,
    refuse_without_cluster,
)

# The service accounts `sandbox up` creates in the task namespace (sandbox.core.spark_access;
# a unit test keeps the names equal). On AKS create them with the same rules.
SUBMIT_SERVICE_ACCOUNT = "spark-submit"
DRIVER_SERVICE_ACCOUNT = "spark-driver"

DRIVER_CONTAINER = "spark-kubernetes-driver"
EXECUTOR_CONTAINER = "spark-kubernetes-executor"
# ACI refuses a container with args but no command, and Spark gives its containers only args
# (`driver ...`, `executor ...`): the templates name the image's entrypoint as the command.
ENTRYPOINT = "/opt/entrypoint.sh"
TEMPLATE_DIR = "/tmp/spark-pod-templates"
TEMPLATE_ENV = {"driver": "SPARK_DRIVER_POD_TEMPLATE", "executor": "SPARK_EXECUTOR_POD_TEMPLATE"}
XCOM_FILE = "/airflow/xcom/return.json"
# The API server as a pod in the cluster reaches it (Kubernetes' `kubernetes` Service).
MASTER = "k8s://https://kubernetes.default.svc:443"


def _blob_env() -> list[dict[str, Any]]:
    return [
        {
            "name": BLOB_ENV,
            "valueFrom": {"secretKeyRef": {"name": BLOB_SECRET_NAME, "key": BLOB_SECRET_KEY}},
        }
    ]


def spark_pod_template(role: str) -> dict[str, Any]:
    """The pod template of the driver or the executors: on the profile's virtual node, the
    entrypoint as command. Spark adds the rest (image, args, resources from the confs, ports, volumes).
    Only the driver gets the blob connection string: it does the job's blob IO."""
    if role not in TEMPLATE_ENV:
        raise ValueError(f"role must be driver or executor, not {role!r}")
    container: dict[str, Any] = {
        "name": DRIVER_CONTAINER if role == "driver" else EXECUTOR_CONTAINER,
        "command": [ENTRYPOINT],
    }
    if role == "driver":
        container["env"] = _blob_env()
    selector, tolerations = placement()  # the profile's virtual node (SANDBOX_PROFILE)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"labels": {"app.kubernetes.io/part-of": "sandbox-samples"}},
        "spec": {
            "nodeSelector": selector,
            "tolerations": [{k: v for k, v in t.to_dict().items() if v is not None} for t in tolerations],
            "containers": [container],
        },
    }


def spark_conf(
    *,
    image: str,
    namespace: str,
    driver_pod: str,
    app_name: str,
    executors: int = 2,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The Spark-on-Kubernetes confs of a cluster-mode submission (names as in Spark's
    docs/running-on-kubernetes.md, "Spark Properties"). Sized to fit ACI's container groups
    with room: requests 250m CPU, memory 512m + Spark's overhead (384Mi minimum)."""
    conf = {
        "spark.app.name": app_name,
        "spark.kubernetes.namespace": namespace,
        "spark.kubernetes.container.image": image,
        "spark.kubernetes.driver.pod.name": driver_pod,
        "spark.kubernetes.submission.waitAppCompletion": "false",
        "spark.kubernetes.authenticate.driver.serviceAccountName": DRIVER_SERVICE_ACCOUNT,
        "spark.kubernetes.driver.podTemplateFile": f"{TEMPLATE_DIR}/driver.json",
        "spark.kubernetes.driver.podTemplateContainerName": DRIVER_CONTAINER,
        "spark.kubernetes.executor.podTemplateFile": f"{TEMPLATE_DIR}/executor.json",
        "spark.kubernetes.executor.podTemplateContainerName": EXECUTOR_CONTAINER,
        "spark.executor.instances": str(executors),
        "spark.driver.cores": "1",
        "spark.executor.cores": "1",
        "spark.kubernetes.driver.request.cores": "250m",
        "spark.kubernetes.executor.request.cores": "250m",
        "spark.kubernetes.driver.limit.cores": "1",
        "spark.kubernetes.executor.limit.cores": "1",
        "spark.driver.memory": "512m",
        "spark.executor.memory": "512m",
        # Executor pods stay after the run for `kubectl` and the e2e (the driver's owner
        # reference still removes them with the driver pod).
        "spark.kubernetes.executor.deleteOnTermination": "false",
        # No PVCs (ACI v1 mounts none): the driver then makes no PVC calls, so its account
        # needs no PVC rights (sandbox.core.spark_access).
        "spark.kubernetes.driver.ownPersistentVolumeClaim": "false",
        "spark.kubernetes.driver.reusePersistentVolumeClaim": "false",
    }
    pull_policy = task_image_pull_policy()
    if pull_policy:
        conf["spark.kubernetes.container.image.pullPolicy"] = pull_policy
    conf.update(extra or {})
    return conf


def spark_submit(
    *,
    task_id: str,
    image: str,
    application: str,
    application_args: Sequence[str],
    conf: Mapping[str, str],
    namespace: str = TASK_NAMESPACE,
    **kwargs: Any,
) -> KubernetesPodOperator:
    """The submit task: `python3 -m sparkjob.submit --xcom ... -- spark-submit arguments`."""
    arguments = ["--xcom", XCOM_FILE, "--", "--master", MASTER, "--deploy-mode", "cluster"]
    for key, value in conf.items():
        arguments += ["--conf", f"{key}={value}"]
    arguments += [application, *application_args]
    templates = {role: json.dumps(spark_pod_template(role), sort_keys=True) for role in TEMPLATE_ENV}
    options: dict[str, Any] = {
        "task_id": task_id,
        "namespace": namespace,
        "image": image,
        "cmds": ["python3", "-m", "sparkjob.submit"],
        "arguments": arguments,
        "env_vars": [k8s.V1EnvVar(name=TEMPLATE_ENV[r], value=t) for r, t in templates.items()],
        "service_account_name": SUBMIT_SERVICE_ACCOUNT,
        "container_resources": k8s.V1ResourceRequirements(
            requests={"cpu": "250m", "memory": "512Mi"}, limits={"cpu": "1", "memory": "1Gi"}
        ),
        "image_pull_policy": task_image_pull_policy(),
        "do_xcom_push": True,
        "get_logs": True,
        "log_events_on_failure": True,
        "on_finish_action": ON_FINISH_ACTION,
        "labels": {"app.kubernetes.io/part-of": "sandbox-samples"},
    }
    if NO_CLUSTER:
        options["pre_execute"] = refuse_without_cluster
    options.update(kwargs)
    return KubernetesPodOperator(**options)


# Waiting reasons a pod does not recover from by itself (kubelet's image and config errors).
STUCK_REASONS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError"}
)


@dataclass(frozen=True)
class DriverState:
    phase: str
    finished: bool
    succeeded: bool
    reason: str  # why it failed or what it waits for, from the pod's and container's status


def driver_state(pod: k8s.V1Pod, container: str = DRIVER_CONTAINER) -> DriverState:
    """Where the driver is, from its pod as the API returns it."""
    status = pod.status or k8s.V1PodStatus()
    phase = status.phase or "Unknown"
    parts = [p for p in (status.reason, status.message) if p]
    state = None
    for c in status.container_statuses or []:
        if c.name == container:
            state = c.state
    if state is not None and state.terminated is not None:
        t = state.terminated
        parts.append(f"container {container} terminated: {t.reason or 'no reason'}, exit code {t.exit_code}")
        if t.message:
            parts.append(t.message.strip())
    if state is not None and state.waiting is not None and state.waiting.reason:
        parts.append(f"container {container} waiting: {state.waiting.reason}")
        if state.waiting.message:
            parts.append(state.waiting.message.strip())
        if state.waiting.reason in STUCK_REASONS:
            return DriverState(phase, True, False, "; ".join(parts))
    if phase == "Succeeded":
        return DriverState(phase, True, True, "; ".join(parts))
    if phase == "Failed":
        return DriverState(phase, True, False, "; ".join(parts) or "the pod failed")
    return DriverState(phase, False, False, "; ".join(parts))


class SparkDriverSensor(BaseSensorOperator):
    """Wait for a Spark driver pod to finish; fail with its reason and log tail if it failed."""

    template_fields: Sequence[str] = ("driver_pod", "namespace")

    def __init__(
        self,
        *,
        driver_pod: Any,
        namespace: Any = TASK_NAMESPACE,
        kubernetes_conn_id: str = "kubernetes_default",
        container: str = DRIVER_CONTAINER,
        log_tail_lines: int = 30,
        deferrable: bool = True,
        startup_timeout: int = 600,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 10)
        kwargs.setdefault("timeout", 60 * 60)
        super().__init__(**kwargs)
        self.driver_pod = driver_pod
        self.namespace = namespace
        self.kubernetes_conn_id = kubernetes_conn_id
        self.container = container
        self.log_tail_lines = log_tail_lines
        self.deferrable = deferrable
        self.startup_timeout = startup_timeout

    def _hook(self) -> Any:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        return KubernetesHook(conn_id=self.kubernetes_conn_id)

    def _state(self, hook: Any) -> DriverState:
        return driver_state(hook.get_pod(self.driver_pod, self.namespace), self.container)

    def _log_tail(self, hook: Any) -> str:
        # Unparsed: the client turns a non-JSON body into the repr of its bytes otherwise.
        try:
            response = hook.core_v1_client.read_namespaced_pod_log(
                self.driver_pod, self.namespace, container=self.container,
                tail_lines=self.log_tail_lines, _preload_content=False,
            )
            return response.data.decode("utf-8", "replace")
        except Exception as exc:  # noqa: BLE001 - the failure is reported either way
            return f"(no log: {type(exc).__name__}: {exc})"

    def _fail(self, hook: Any, state: DriverState) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        tail = self._log_tail(hook).rstrip()
        self.log.error("driver %s/%s, last %d log lines:\n%s", self.namespace, self.driver_pod, self.log_tail_lines, tail)
        raise AirflowFailException(
            f"Spark driver {self.namespace}/{self.driver_pod} {state.phase}: {state.reason}"
            + (f"; log tail: {tail.splitlines()[-1]}" if tail else "")
        )

    def poke(self, context: Any) -> bool:
        hook = self._hook()
        state = self._state(hook)
        if state.finished and not state.succeeded:
            self._fail(hook, state)
        self.log.info("driver %s/%s: %s %s", self.namespace, self.driver_pod, state.phase, state.reason)
        return state.succeeded

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            super().execute(context)
            return self._result()
        from airflow.providers.cncf.kubernetes.triggers.pod import KubernetesPodTrigger

        self.defer(
            trigger=KubernetesPodTrigger(
                pod_name=self.driver_pod,
                pod_namespace=self.namespace,
                trigger_start_time=datetime.now(tz=UTC),
                base_container_name=self.container,
                kubernetes_conn_id=self.kubernetes_conn_id,
                poll_interval=self.poke_interval,
                get_logs=False,
                startup_timeout=self.startup_timeout,
                schedule_timeout=self.startup_timeout,
                on_finish_action="keep_pod",
                on_kill_action="keep_pod",
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Any, event: Mapping[str, Any]) -> Any:
        """The trigger says the driver stopped running (or gave up): the pod itself decides."""
        from airflow.sdk.exceptions import AirflowException

        hook = self._hook()
        state = self._state(hook)
        if state.finished and not state.succeeded:
            self._fail(hook, state)
        if not state.succeeded:
            raise AirflowException(
                f"waiting for driver {self.namespace}/{self.driver_pod} ended with "
                f"{event.get('status')}: {event.get('message', '')} (driver {state.phase} {state.reason})".rstrip()
            )
        return self._result()

    def _result(self) -> dict[str, str]:
        self.log.info("driver %s/%s succeeded", self.namespace, self.driver_pod)
        return {"driver_pod": str(self.driver_pod), "namespace": str(self.namespace), "phase": "Succeeded"}
