"""Render a KubernetesPodOperator task's pod offline, with the provider's own builder.

`build_pod_request_obj(dry_run=True)` skips the in-cluster check, so no kubeconfig and no
cluster are needed; the result is the V1Pod the operator would send, as a JSON-like dict (the
shape admission policies see, before the API server's defaulting).
"""

from __future__ import annotations

from typing import Any


def is_pod_task(task: Any) -> bool:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    return isinstance(task, KubernetesPodOperator)


def render_pod(task: Any) -> dict[str, Any]:
    """The pod of one KubernetesPodOperator task (templates left unrendered)."""
    from kubernetes.client import ApiClient

    pod = task.build_pod_request_obj(dry_run=True)
    return ApiClient().sanitize_for_serialization(pod)


TOKEN_VOLUME = "kube-api-access-sandbox"


def as_admitted(pod: dict[str, Any]) -> dict[str, Any]:
    """The pod as validating admission sees it, for what counts against ACI's limits: the
    ServiceAccount admission plugin adds a projected token volume (mounted in every container)
    unless automountServiceAccountToken is false. Other server defaults (imagePullPolicy,
    requests copied from limits) are handled by the rules themselves."""
    spec = pod.get("spec") or {}
    if spec.get("automountServiceAccountToken") is False:
        return pod
    volume = {"name": TOKEN_VOLUME, "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}
    return {**pod, "spec": {**spec, "volumes": [*(spec.get("volumes") or []), volume]}}
