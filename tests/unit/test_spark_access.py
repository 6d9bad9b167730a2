"""The Spark samples' service accounts: schema-valid, namespaced, exactly the verbs Spark uses,
and named as the DAG folder's helper names them."""

from __future__ import annotations

import ast
from pathlib import Path

import kubernetes_validate
import pytest
from support import REPO

from sandbox.config import load_settings
from sandbox.core import spark_access
from sandbox.core.access import access_manifests

K8S_VERSION = "1.37.0"


@pytest.fixture
def manifests(tmp_path: Path):
    return spark_access.spark_access_manifests(load_settings(tmp_path, environ={}))


def _rules(manifests, account: str) -> dict[str, set[str]]:
    [role] = [m for m in manifests if m["kind"] == "Role" and m["metadata"]["name"] == account]
    return {res: set(r["verbs"]) for r in role["rules"] for res in r["resources"]}


def test_manifests_are_valid_and_namespaced(manifests) -> None:
    for manifest in manifests:
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
        assert manifest["metadata"]["namespace"] == "sandbox-tasks"
    assert {m["kind"] for m in manifests} == {"ServiceAccount", "Role", "RoleBinding"}


def test_each_binding_grants_its_own_role_to_its_own_account(manifests) -> None:
    for binding in (m for m in manifests if m["kind"] == "RoleBinding"):
        name = binding["metadata"]["name"]
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": "sandbox-tasks"}]


def test_submit_account_creates_the_driver_and_its_objects_only(manifests) -> None:
    assert _rules(manifests, "spark-submit") == {
        "pods": {"create", "get", "patch", "delete"},
        "configmaps": {"create", "patch", "delete"},
        "services": {"create", "patch", "delete"},
    }


def test_driver_account_manages_executors_without_secrets_or_pvcs(manifests) -> None:
    rules = _rules(manifests, "spark-driver")
    assert rules["pods"] == {"create", "get", "list", "watch", "patch", "delete", "deletecollection"}
    assert rules["configmaps"] == {"create", "delete", "deletecollection"}
    assert rules["services"] == {"delete", "deletecollection"}
    assert set(rules) == {"pods", "configmaps", "services"}
    assert all(r["apiGroups"] == [""] for m in manifests if m["kind"] == "Role" for r in m["rules"])


def test_sandbox_up_applies_them_after_the_namespace(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={})
    kinds = [(m["kind"], m["metadata"]["name"]) for m in access_manifests(settings)]
    assert kinds.index(("Namespace", "sandbox-tasks")) == 0
    assert ("Role", "spark-driver") in kinds and ("RoleBinding", "spark-submit") in kinds


def test_dag_helper_names_the_same_accounts() -> None:
    """The DAG folder cannot import sandbox: compare the constants in its source."""
    tree = ast.parse((REPO / "sample_dags" / "sandbox_tasks" / "spark.py").read_text())
    values = {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Constant)
    }
    assert values["SUBMIT_SERVICE_ACCOUNT"] == spark_access.SUBMIT_SERVICE_ACCOUNT
    assert values["DRIVER_SERVICE_ACCOUNT"] == spark_access.DRIVER_SERVICE_ACCOUNT
