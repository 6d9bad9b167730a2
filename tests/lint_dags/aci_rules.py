"""One KubernetesPodOperator task per ACI rule that violates it, next to a clean twin.

`sandbox lint tests/lint_dags` must report exactly the violations and warnings that
tests/unit/test_lint_folder.py expects, for both profiles. Every task here is bound for the
virtual node (nodeSelector + toleration), so the ACI rules apply to all of them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG
from kubernetes.client import models as k8s

VIRTUAL_NODE = {
    "node_selector": {"type": "virtual-kubelet"},
    "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}],
}


def resources(
    cpu: str = "500m", memory: str = "512Mi", limits: dict[str, str] | None = None
) -> k8s.V1ResourceRequirements:
    return k8s.V1ResourceRequirements(requests={"cpu": cpu, "memory": memory}, limits=limits)


def pod_task(task_id: str, **overrides: Any) -> KubernetesPodOperator:
    """A clean virtual-node task; each keyword overrides one part of it."""
    kwargs: dict[str, Any] = {
        "image": "python:3.11-slim",
        "cmds": ["python", "-c"],
        "arguments": ["print('ok')"],
        "container_resources": resources(),
        "do_xcom_push": False,
        **VIRTUAL_NODE,
        **overrides,
    }
    return KubernetesPodOperator(task_id=task_id, **kwargs)


def with_base(**fields: Any) -> k8s.V1Pod:
    """A full_pod_spec whose `base` container carries fields KPO has no argument for."""
    return k8s.V1Pod(spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="base", **fields)]))


def sidecars(count: int) -> k8s.V1Pod:
    small = k8s.V1ResourceRequirements(requests={"cpu": "10m", "memory": "16Mi"})
    extra = [
        k8s.V1Container(name=f"side{i}", image="busybox:1.36", command=["sleep", "1"], resources=small)
        for i in range(count)
    ]
    return k8s.V1Pod(spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="base"), *extra]))


def empty_dirs(count: int) -> list[k8s.V1Volume]:
    return [k8s.V1Volume(name=f"v{i}", empty_dir=k8s.V1EmptyDirVolumeSource()) for i in range(count)]


INIT = k8s.V1Container(name="prepare", image="busybox:1.36", command=["true"])
INIT_WITH_RESOURCES = k8s.V1Container(
    name="prepare", image="busybox:1.36", command=["true"], resources=resources()
)
EXEC = k8s.V1ExecAction(command=["true"])
POD_NAME = k8s.V1EnvVar(
    name="POD_NAME",
    value_from=k8s.V1EnvVarSource(field_ref=k8s.V1ObjectFieldSelector(field_path="metadata.name")),
)

with DAG("aci_rules", schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False):
    pod_task("clean")
    # deny, both profiles
    pod_task("cpu_max_bad", container_resources=resources(cpu="4500m"))
    pod_task("cpu_max_ok", container_resources=resources(cpu="4"))
    pod_task("cpu_limit_bad", container_resources=resources(cpu="1", memory="1Gi", limits={"cpu": "5"}))
    pod_task("memory_max_bad", container_resources=resources(memory="17Gi"))
    pod_task("memory_max_ok", container_resources=resources(memory="16Gi"))
    pod_task("max_containers_bad", full_pod_spec=sidecars(60))
    pod_task("max_containers_ok", full_pod_spec=sidecars(59))
    # Kubernetes adds the service-account token volume: 20 + 1 is too many, 19 + 1 fits.
    pod_task("max_volumes_bad", volumes=empty_dirs(20))
    pod_task("max_volumes_ok", volumes=empty_dirs(19))
    pod_task("max_volumes_no_token_ok", volumes=empty_dirs(20), automount_service_account_token=False)
    pod_task("startup_probe_bad", full_pod_spec=with_base(startup_probe=k8s.V1Probe(_exec=EXEC)))
    pod_task("startup_probe_ok", full_pod_spec=with_base(liveness_probe=k8s.V1Probe(_exec=EXEC)))
    pod_task("args_without_command_bad", cmds=None, arguments=["--epochs", "3"])
    pod_task("args_without_command_ok", cmds=["python", "train.py"], arguments=["--epochs", "3"])
    pod_task(
        "volume_host_path_bad",
        volumes=[k8s.V1Volume(name="host", host_path=k8s.V1HostPathVolumeSource(path="/data"))],
    )
    pod_task(
        "volume_csi_without_secret_bad",  # the ACI provider needs shareName and secretName
        volumes=[
            k8s.V1Volume(
                name="files",
                csi=k8s.V1CSIVolumeSource(driver="file.csi.azure.com", volume_attributes={"shareName": "m"}),
            )
        ],
    )
    pod_task(
        "volume_pvc",  # refused by aci-v1, allowed by aci-v2 (Azure Files PVCs)
        volumes=[
            k8s.V1Volume(
                name="share",
                persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(claim_name="files"),
            )
        ],
    )
    pod_task(
        "volume_ok",
        volumes=[
            k8s.V1Volume(name="scratch", empty_dir=k8s.V1EmptyDirVolumeSource()),
            k8s.V1Volume(name="creds", secret=k8s.V1SecretVolumeSource(secret_name="creds")),
            k8s.V1Volume(
                name="files",
                csi=k8s.V1CSIVolumeSource(
                    driver="file.csi.azure.com",
                    volume_attributes={"shareName": "models", "secretName": "storage-account"},
                ),
            ),
        ],
    )
    # deny in aci-v1, allowed in aci-v2
    pod_task("init_containers", init_containers=[INIT])
    pod_task("host_aliases", host_aliases=[k8s.V1HostAlias(ip="10.0.0.1", hostnames=["db"])])
    pod_task(
        "lifecycle_hooks",
        full_pod_spec=with_base(lifecycle=k8s.V1Lifecycle(pre_stop=k8s.V1LifecycleHandler(_exec=EXEC))),
    )
    pod_task("xcom_sidecar", do_xcom_push=True)
    # deny in aci-v2 (and, as an init container, in aci-v1)
    pod_task("init_container_resources", init_containers=[INIT_WITH_RESOURCES])
    # warnings
    pod_task("privileged", container_security_context={"privileged": True})
    pod_task("run_as_user", security_context={"runAsUser": 1000})
    pod_task("host_network", hostnetwork=True)
    pod_task("pull_never", image_pull_policy="Never")
    pod_task("pull_if_not_present", image_pull_policy="IfNotPresent")
    pod_task("empty_env", env_vars={"EMPTY": "", "FULL": "x"})
    pod_task("downward_api", env_vars=[POD_NAME])
    pod_task("no_requests", container_resources=None)
    pod_task("limits_only", container_resources=k8s.V1ResourceRequirements(limits={"cpu": "1", "memory": "1Gi"}))
    pod_task("image_latest", image="python:latest")
    pod_task("image_untagged", image="registry.local:5000/team/python")
    pod_task("image_latest_if_not_present", image="python:latest", image_pull_policy="IfNotPresent")
    pod_task("image_digest", image="python@sha256:" + "0" * 64)
