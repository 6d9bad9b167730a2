"""Placement cases: which pod tasks reach the virtual node (and so are held to ACI rules)."""

from __future__ import annotations

import datetime as dt

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG
from kubernetes.client import models as k8s

TOLERATE = [{"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}]
SELECT = {"type": "virtual-kubelet"}
HOST_PATH = [k8s.V1Volume(name="host", host_path=k8s.V1HostPathVolumeSource(path="/data"))]
REQUESTS = k8s.V1ResourceRequirements(requests={"cpu": "250m", "memory": "256Mi"})


def affinity(operator: str, *values: str) -> k8s.V1Affinity:
    expression = k8s.V1NodeSelectorRequirement(key="type", operator=operator, values=list(values) or None)
    terms = [k8s.V1NodeSelectorTerm(match_expressions=[expression])]
    required = k8s.V1NodeSelector(node_selector_terms=terms)
    return k8s.V1Affinity(node_affinity=k8s.V1NodeAffinity(required_during_scheduling_ignored_during_execution=required))


def task(task_id: str, **kwargs) -> KubernetesPodOperator:
    return KubernetesPodOperator(
        task_id=task_id, image="python:3.11-slim", cmds=["true"], container_resources=REQUESTS,
        do_xcom_push=False, **kwargs,
    )


with DAG("placement", schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False):
    # Ordinary worker: no ACI rules apply, even to a hostPath volume.
    task("worker_host_path", volumes=HOST_PATH)
    # Selects the virtual node but does not tolerate its taint: nowhere to go.
    task("selector_without_toleration", node_selector=SELECT)
    # Tolerates, selects a label no node has.
    task("wrong_selector", node_selector={"type": "virtual-kubelett"}, tolerations=TOLERATE)
    # Virtual nodes v2's selector: only the aci-v2 profile's virtual node carries that label.
    task("v2_selector", node_selector={"virtualization": "virtualnode2"}, tolerations=TOLERATE)
    # Tolerates only: may land on either, so ACI rules apply.
    task("toleration_only_host_path", tolerations=TOLERATE, volumes=HOST_PATH)
    # Required node affinity instead of a nodeSelector.
    task("affinity_in", affinity=affinity("In", "virtual-kubelet"), tolerations=TOLERATE)
    task("affinity_not_in_host_path", affinity=affinity("NotIn", "virtual-kubelet"),
         tolerations=TOLERATE, volumes=HOST_PATH)
    task("affinity_exists", affinity=affinity("Exists"), tolerations=TOLERATE)
    # Tolerates every taint (empty key, Exists): control plane, worker and virtual node.
    task("tolerate_everything", tolerations=[{"operator": "Exists"}])
    # Equal with the taint's value; and one with the wrong value.
    task("toleration_equal", node_selector=SELECT,
         tolerations=[{"key": "virtual-kubelet.io/provider", "operator": "Equal", "value": "azure"}])
    task("toleration_wrong_value", node_selector=SELECT,
         tolerations=[{"key": "virtual-kubelet.io/provider", "operator": "Equal", "value": "aws"}])
    # The provider itself cannot build this pod (a malformed template): reported, not a crash.
    task("render_fails", pod_template_dict={"spec": {"containers": "not-a-list"}})
