"""Least-privilege access for Airflow: schema-valid manifests, the SA kubeconfig, and
ensure_cluster_access against the FakeKube boundary."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from fakes import FakeKube
from support import can_i_argv

from sandbox.config import load_settings
from sandbox.core.access import (
    access_manifests,
    airflow_kubeconfig,
    ensure_cluster_access,
    internal_server,
)
from sandbox.core.blob import blob_secret_manifest
from sandbox.errors import ClusterError
from sandbox.progress import SilentReporter
from sandbox.state import StateDir

K8S_VERSION = "1.37.0"  # the node image's Kubernetes (kind-config.yaml)


@pytest.fixture
def settings(tmp_path: Path):
    return load_settings(tmp_path, environ={})


def test_manifests_are_valid_kubernetes_objects(settings) -> None:
    manifests = access_manifests(settings)
    assert [m["kind"] for m in manifests] == [
        "Namespace",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Secret",
        *["ServiceAccount", "Role", "RoleBinding"] * 2,  # spark-submit, spark-driver
    ]
    for manifest in [
        *manifests,
        blob_secret_manifest(settings.task_namespace, "http://azurite:10000/x"),
    ]:
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def test_schema_validation_can_fail(settings) -> None:
    role = access_manifests(settings)[2]
    broken = {**role, "rules": [{"apiGroups": [""], "resources": ["pods"], "verb": ["get"]}]}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_role_is_namespaced_and_limited_to_pod_work(settings) -> None:
    _, sa, role, binding, secret = access_manifests(settings)[:5]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "sandbox-tasks"
    rules = {r["resources"][0]: set(r["verbs"]) for r in role["rules"]}
    assert rules == {
        "pods": {"create", "get", "list", "watch", "patch", "delete"},
        "pods/log": {"get"},
        "pods/exec": {"create", "get"},
        "events": {"get", "list", "watch"},
    }
    assert all(r["apiGroups"] == [""] for r in role["rules"])
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "airflow-tasks", "namespace": "sandbox-tasks"}
    ]
    assert secret["type"] == "kubernetes.io/service-account-token"
    assert (
        secret["metadata"]["annotations"]["kubernetes.io/service-account.name"] == sa["metadata"]["name"]
    )


def test_airflow_kubeconfig_is_internal_and_carries_the_token(settings) -> None:
    text = airflow_kubeconfig(
        cluster="sandbox",
        server=internal_server(settings),
        ca_data="Q0E=",
        token="tok",
        namespace="sandbox-tasks",
    )
    config = yaml.safe_load(text)
    (cluster,) = config["clusters"]
    assert cluster["cluster"] == {
        "server": "https://sandbox-control-plane:6443",
        "certificate-authority-data": "Q0E=",
    }
    assert "127.0.0.1" not in text and "localhost" not in text
    (user,) = config["users"]
    assert user["user"] == {"token": "tok"}
    (context,) = config["contexts"]
    assert context["context"]["namespace"] == "sandbox-tasks"
    assert config["current-context"] == context["name"]


def test_ensure_cluster_access_applies_in_order_and_writes_a_private_kubeconfig(settings) -> None:
    kube = FakeKube(token_after_reads=1)  # the token controller needs a moment
    state = StateDir(settings.state_dir)
    reporter = SilentReporter()
    ensure_cluster_access(settings, kube, state, reporter)
    assert kube.writes() == [
        ("APPLY", "Namespace sandbox-tasks"),
        ("APPLY", "ServiceAccount sandbox-tasks/airflow-tasks"),
        ("APPLY", "Role sandbox-tasks/airflow-tasks-pod-launcher"),
        ("APPLY", "RoleBinding sandbox-tasks/airflow-tasks-pod-launcher"),
        ("APPLY", "Secret sandbox-tasks/airflow-tasks-token"),
        *[
            (verb, f"{kind} sandbox-tasks/{account}")
            for account in ("spark-submit", "spark-driver")
            for verb, kind in (("APPLY", "ServiceAccount"), ("APPLY", "Role"), ("APPLY", "RoleBinding"))
        ],
    ]
    path = state.airflow_kubeconfig
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = yaml.safe_load(path.read_text())
    assert config["users"][0]["user"]["token"] == "token-for-airflow-tasks"
    assert config["clusters"][0]["cluster"]["server"] == "https://sandbox-control-plane:6443"
    assert base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]).startswith(
        b"-----BEGIN"
    )
    # A second run re-applies (cheap, idempotent) and leaves the same kubeconfig untouched.
    mtime = path.stat().st_mtime_ns
    ensure_cluster_access(settings, kube, state, reporter)
    assert path.stat().st_mtime_ns == mtime
    assert len(reporter.messages) == 1


def test_no_token_is_a_cluster_error_with_a_hint(settings) -> None:
    kube = FakeKube(token_after_reads=10**6)
    with pytest.raises(ClusterError, match="token of service account airflow-tasks") as info:
        ensure_cluster_access(
            settings, kube, StateDir(settings.state_dir), SilentReporter(), token_timeout=0.3
        )
    assert "token controller" in (info.value.hint or "")
    assert not StateDir(settings.state_dir).airflow_kubeconfig.exists()


def test_can_i_puts_a_subresource_in_its_flag() -> None:
    """tests/e2e/test_cluster.py asks `kubectl auth can-i` about pods/log and pods/exec: as a
    positional `pods/log` kubectl would check the pod *named* log (cani.go splits on "/")."""
    sa = "system:serviceaccount:t:airflow-tasks"
    assert can_i_argv("get", "pods/log", namespace="t", as_user=sa) == [
        "auth", "can-i", "get", "pods", "--subresource", "log", "-n", "t", "--as", sa,
    ]
    assert can_i_argv("list", "nodes", namespace=None, as_user=sa) == ["auth", "can-i", "list", "nodes", "--as", sa]
