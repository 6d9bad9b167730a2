"""The pods Spark will create for a cluster-mode `spark-submit` pod task, for `sandbox lint`.

A KubernetesPodOperator task that runs `spark-submit --master k8s://... --deploy-mode cluster`
makes Spark create a driver pod, and the driver creates executor pods: Airflow never renders
them. Lint reads the submission from the task's rendered pod (the `--conf key=value` arguments,
the pod templates from the env variables SPARK_DRIVER_POD_TEMPLATE / SPARK_EXECUTOR_POD_TEMPLATE
that the sample `spark` image writes to the template files) and builds each pod as Spark would:
the template, plus what Spark's feature steps add that the ACI rules look at. Verified in Spark's
sources (resource-managers/kubernetes/core, Spark 4.x):

- BasicDriverFeatureStep / BasicExecutorFeatureStep: container image; CPU request
  spark.kubernetes.{driver,executor}.request.cores else spark.{driver,executor}.cores (default 1),
  CPU limit only from ...limit.cores; memory request = limit = memory + overhead, overhead =
  max(factor x memory, 384 MiB), factor 0.4 for Python applications (NON_JVM_MEMORY_OVERHEAD_FACTOR,
  also handed to executors) unless set; env SPARK_DRIVER_BIND_ADDRESS / SPARK_EXECUTOR_POD_IP from
  the downward API (fieldRef status.podIP); restartPolicy Never; labels spark-role=driver|executor.
- DriverCommandFeatureStep: the driver container gets args `driver --properties-file ...` and no
  command (the template's command, if any, is kept); executors get `executor`.
- LocalDirsFeatureStep: an emptyDir `spark-local-dir-1`; Client / KubernetesClusterSchedulerBackend:
  the conf ConfigMap volumes `spark-conf-volume-driver` / `spark-conf-volume-exec`;
  PodTemplateConfigMapStep: the executor template as ConfigMap volume `pod-template-volume` on
  the driver.
- DriverKubernetesCredentialsFeatureStep / ExecutorKubernetesCredentialsFeatureStep: the driver's
  service account spark.kubernetes.authenticate.driver.serviceAccountName; executors use
  ...executor.serviceAccountName, else the driver's.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

TEMPLATE_ENV = {"driver": "SPARK_DRIVER_POD_TEMPLATE", "executor": "SPARK_EXECUTOR_POD_TEMPLATE"}
CONTAINER = {"driver": "spark-kubernetes-driver", "executor": "spark-kubernetes-executor"}
MIN_OVERHEAD_MIB = 384  # ResourceProfile.MEMORY_OVERHEAD_MIN_MIB
JVM_OVERHEAD_FACTOR = 0.1  # spark.kubernetes.memoryOverheadFactor's default
NON_JVM_OVERHEAD_FACTOR = 0.4  # Python and R applications


@dataclass(frozen=True)
class SparkPod:
    role: str  # driver | executor
    pod: dict[str, Any] | None  # None when the template could not be read
    problem: str = ""  # why not


@dataclass(frozen=True)
class Submission:
    conf: dict[str, str]
    application: str
    env: dict[str, str]


def find_submission(pod: Mapping[str, Any]) -> Submission | None:
    """The cluster-mode Spark submission a rendered pod runs, if any."""
    for container in (pod.get("spec") or {}).get("containers") or []:
        words = [str(w) for w in [*(container.get("command") or []), *(container.get("args") or [])]]
        if not _cluster_mode(words):
            continue
        env = {e["name"]: str(e.get("value") or "") for e in container.get("env") or [] if "name" in e}
        return Submission(_confs(words), _application(words), env)
    return None


def _option(words: Sequence[str], name: str) -> str | None:
    for i, word in enumerate(words):
        if word == name and i + 1 < len(words):
            return words[i + 1]
        if word.startswith(name + "="):
            return word.partition("=")[2]
    return None


def _cluster_mode(words: Sequence[str]) -> bool:
    master = _option(words, "--master") or ""
    return master.startswith("k8s://") and _option(words, "--deploy-mode") == "cluster"


def _confs(words: Sequence[str]) -> dict[str, str]:
    conf: dict[str, str] = {}
    for i, word in enumerate(words):
        pair = words[i + 1] if word == "--conf" and i + 1 < len(words) else None
        if word.startswith("--conf="):
            pair = word.removeprefix("--conf=")
        if pair and "=" in pair:
            key, _, value = pair.partition("=")
            conf[key] = value
    return conf


def _application(words: Sequence[str]) -> str:
    """The primary resource: the first word after the options that looks like one."""
    for word in words:
        if re.match(r"^(local|file|https?|abfss?|wasbs?|s3a?)://", word) or word.endswith((".py", ".jar")):
            return word
    return ""


def _mib(text: str) -> int:
    """Spark's JVM memory strings (512m, 1g, 1024k; bare numbers are MiB for these confs)."""
    match = re.fullmatch(r"(\d+)([kmgt]?)b?", text.strip().lower())
    if not match:
        raise ValueError(f"{text!r} is not a Spark memory size")
    number, unit = int(match.group(1)), match.group(2) or "m"
    return {"k": number // 1024, "m": number, "g": number * 1024, "t": number * 1024 * 1024}[unit]


def _resources(role: str, conf: Mapping[str, str], python: bool) -> dict[str, Any]:
    prefix = f"spark.{role}"
    cpu = conf.get(f"spark.kubernetes.{role}.request.cores") or conf.get(f"{prefix}.cores", "1")
    memory = _mib(conf.get(f"{prefix}.memory", "1g"))
    default_factor = NON_JVM_OVERHEAD_FACTOR if python else JVM_OVERHEAD_FACTOR
    factor = float(
        conf.get(f"{prefix}.memoryOverheadFactor")
        or conf.get("spark.kubernetes.memoryOverheadFactor")
        or default_factor
    )
    explicit = conf.get(f"{prefix}.memoryOverhead")
    overhead = _mib(explicit) if explicit else max(int(factor * memory), MIN_OVERHEAD_MIB)
    total = f"{memory + overhead}Mi"
    resources: dict[str, Any] = {"requests": {"cpu": cpu, "memory": total}, "limits": {"memory": total}}
    limit = conf.get(f"spark.kubernetes.{role}.limit.cores")
    if limit:
        resources["limits"]["cpu"] = limit
    return resources


def _template(role: str, submission: Submission) -> tuple[dict[str, Any] | None, str]:
    key = f"spark.kubernetes.{role}.podTemplateFile"
    if key not in submission.conf:
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": {"containers": [{}]}}, ""
    text = submission.env.get(TEMPLATE_ENV[role])
    if not text:
        return None, (
            f"{key} is set, but the task's pod has no {TEMPLATE_ENV[role]} to read the template "
            "from: lint cannot check the pods Spark creates from it"
        )
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return None, f"{TEMPLATE_ENV[role]} is not YAML/JSON: {exc}"
    if not isinstance(loaded, dict):
        return None, f"{TEMPLATE_ENV[role]} does not hold a pod"
    return loaded, ""


def spark_pods(pod: Mapping[str, Any]) -> list[SparkPod]:
    """The driver and one executor pod of the submission `pod` runs (none if it runs none)."""
    submission = find_submission(pod)
    if submission is None:
        return []
    return [_build(role, submission) for role in ("driver", "executor")]


def _build(role: str, submission: Submission) -> SparkPod:
    template, problem = _template(role, submission)
    if template is None:
        return SparkPod(role, None, problem)
    conf = submission.conf
    pod = copy.deepcopy(template)
    spec = pod.setdefault("spec", {})
    containers = spec.setdefault("containers", [{}]) or [{}]
    spec["containers"] = containers
    wanted = conf.get(f"spark.kubernetes.{role}.podTemplateContainerName")
    index = next((i for i, c in enumerate(containers) if wanted and c.get("name") == wanted), 0)
    container = containers[index]
    container.setdefault("name", CONTAINER[role])
    container["image"] = conf.get(f"spark.kubernetes.{role}.container.image") or conf.get(
        "spark.kubernetes.container.image", ""
    )
    python = submission.application.endswith(".py")
    resources = _resources(role, conf, python)
    existing = container.get("resources") or {}
    container["resources"] = {
        "requests": {**(existing.get("requests") or {}), **resources["requests"]},
        "limits": {**(existing.get("limits") or {}), **resources["limits"]},
    }
    ip_env = "SPARK_DRIVER_BIND_ADDRESS" if role == "driver" else "SPARK_EXECUTOR_POD_IP"
    container["env"] = [
        *(container.get("env") or []),
        {"name": ip_env, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
    ]
    if role == "driver":
        container["args"] = [
            *(container.get("args") or []),
            "driver", "--properties-file", "/opt/spark/conf/spark.properties",
            "--class", "org.apache.spark.deploy.PythonRunner" if python else "<main class>",
            submission.application,
        ]
    else:
        container["args"] = [*(container.get("args") or []), "executor"]
    volumes = [{"name": "spark-local-dir-1", "emptyDir": {}}]
    conf_map = "spark-conf-volume-driver" if role == "driver" else "spark-conf-volume-exec"
    volumes.append({"name": conf_map, "configMap": {"name": f"<{role} conf map>"}})
    if role == "driver" and "spark.kubernetes.executor.podTemplateFile" in conf:
        volumes.append({"name": "pod-template-volume", "configMap": {"name": "<executor pod template>"}})
    existing_names = {v.get("name") for v in spec.get("volumes") or []}
    spec["volumes"] = [*(spec.get("volumes") or []), *(v for v in volumes if v["name"] not in existing_names)]
    spec["restartPolicy"] = "Never"
    account = conf.get(f"spark.kubernetes.authenticate.{role}.serviceAccountName") or conf.get(
        "spark.kubernetes.authenticate.driver.serviceAccountName"
    )
    if account:
        spec["serviceAccountName"] = account
    metadata = pod.setdefault("metadata", {})
    metadata["labels"] = {**(metadata.get("labels") or {}), "spark-role": role}
    if role == "driver" and conf.get("spark.kubernetes.driver.pod.name"):
        metadata["name"] = conf["spark.kubernetes.driver.pod.name"]
    return SparkPod(role, pod)

