"""The Kubernetes adapter: parsers against API-format fixtures, and the real kubernetes client
talking HTTP to a loopback stand-in of the API server that records each request (a live API
server cannot run here), so the wire format (methods, paths, content types, queries) is checked.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from sandbox.adapters.kube import (
    KubeApi,
    kubeconfig_ca_data,
    parse_node,
    resource_path,
    secret_token,
)
from sandbox.config import load_settings
from sandbox.core.access import access_manifests
from sandbox.core.blob import blob_secret_manifest
from sandbox.core.kind_config import VIRTUAL_NODE_TAINT, Taint
from sandbox.errors import ClusterError, KubeApiError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "kube"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def test_parse_nodes() -> None:
    nodes = [parse_node(item) for item in fixture("nodes-after-create.json")["items"]]
    assert [n.name for n in nodes] == ["sandbox-control-plane", "sandbox-worker", "sandbox-worker2"]
    cp, worker, virtual = nodes
    assert cp.taints == (Taint("node-role.kubernetes.io/control-plane", "", "NoSchedule"),)
    assert worker.taints == () and worker.ready
    assert virtual.taints == (VIRTUAL_NODE_TAINT,)
    assert virtual.labels["type"] == "virtual-kubelet" and "kubernetes.io/role" not in virtual.labels
    assert virtual.kubelet_version == "v1.37.0"
    joining = [parse_node(item) for item in fixture("nodes-joining.json")["items"]]
    assert [n.ready for n in joining] == [True, False, False]
    assert [n.pods_capacity for n in nodes] == [110, 110, 110]  # kubelet's default --max-pods
    v2 = parse_node(fixture("nodes-verified-aci-v2.json")["items"][2])
    assert v2.pods_capacity == 200 and v2.labels["virtualization"] == "virtualnode2"
    assert parse_node({"metadata": {"name": "n"}}).pods_capacity is None


@pytest.mark.parametrize(("profile", "name"), [("aci-v1", "nodes-verified.json"), ("aci-v2", "nodes-verified-aci-v2.json")])
def test_the_fake_api_leaves_nodes_as_the_fixtures_show_them(tmp_path: Path, repo: Path, profile: str, name: str) -> None:
    """FakeKube after `up` labelled the nodes equals the API-format fixture (labels but arch,
    taints, capacity), so tests on the fake hold for what the API server returns."""
    from fakes import FakeKube

    from sandbox.core.cluster import ensure_virtual_node
    from sandbox.core.kind_config import declared_nodes
    from sandbox.progress import SilentReporter

    (tmp_path / "kind-config.yaml").write_text((repo / "kind-config.yaml").read_text())
    settings = load_settings(tmp_path, environ={"SANDBOX_PROFILE": profile})
    kube = FakeKube.from_specs(declared_nodes(settings))
    ensure_virtual_node(settings, kube, SilentReporter())

    def comparable(node: Any) -> tuple:
        labels = {k: v for k, v in node.labels.items() if "arch" not in k}
        return node.name, labels, node.taints, node.pods_capacity

    recorded = [parse_node(item) for item in fixture(name)["items"]]
    assert [comparable(n) for n in kube.nodes()] == [comparable(n) for n in recorded]


def test_parse_token() -> None:
    token = secret_token(fixture("token-secret.json"))
    assert token and token.startswith("eyJhbGciOiJSUzI1NiIs")
    assert secret_token({"data": {}}) is None


def test_ca_data_comes_from_the_current_context() -> None:
    ca = kubeconfig_ca_data((FIXTURES / "kubeconfig-kind.yaml").read_text())
    assert base64.b64decode(ca).startswith(b"-----BEGIN CERTIFICATE-----")
    with pytest.raises(ClusterError, match="certificate-authority-data"):
        kubeconfig_ca_data("apiVersion: v1\nkind: Config\n")


def test_resource_paths(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={})
    paths = [resource_path(m) for m in access_manifests(settings)]
    assert paths == [
        "/api/v1/namespaces/sandbox-tasks",
        "/api/v1/namespaces/sandbox-tasks/serviceaccounts/airflow-tasks",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/sandbox-tasks/roles/airflow-tasks-pod-launcher",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/sandbox-tasks/rolebindings/airflow-tasks-pod-launcher",
        "/api/v1/namespaces/sandbox-tasks/secrets/airflow-tasks-token",
        "/api/v1/namespaces/sandbox-tasks/serviceaccounts/spark-submit",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/sandbox-tasks/roles/spark-submit",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/sandbox-tasks/rolebindings/spark-submit",
        "/api/v1/namespaces/sandbox-tasks/serviceaccounts/spark-driver",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/sandbox-tasks/roles/spark-driver",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/sandbox-tasks/rolebindings/spark-driver",
    ]
    assert (
        resource_path(blob_secret_manifest("ns", "http://x"))
        == "/api/v1/namespaces/ns/secrets/sandbox-blob"
    )
    vap = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "aci"},
    }
    assert resource_path(vap) == "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies/aci"
    with pytest.raises(ClusterError, match="not a kind the sandbox manages") as info:
        resource_path(
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "namespace": "y"}}
        )
    assert info.value.hint
    with pytest.raises(ClusterError, match="metadata.namespace"):
        resource_path({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}})


class ApiStandIn(ThreadingHTTPServer):
    """Answers (method, path) from `routes` with (status, JSON); records every request."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[tuple[str, str], tuple[int, Any]] = {}
        self.seen: list[dict[str, Any]] = []


class _Handler(BaseHTTPRequestHandler):
    server: ApiStandIn

    def _answer(self) -> None:
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append(
            {
                "method": self.command,
                "path": path,
                "query": query,
                "content_type": self.headers.get("Content-Type"),
                "auth": self.headers.get("Authorization"),
                "body": json.loads(body) if body else None,
            }
        )
        status, payload = self.server.routes.get(
            (self.command, path), (404, fixture("status-node-404.json"))
        )
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PATCH = do_DELETE = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[ApiStandIn, KubeApi]]:
    server = ApiStandIn()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    text = (FIXTURES / "kubeconfig-kind.yaml").read_text()
    text = text.replace("https://127.0.0.1:40123", f"http://127.0.0.1:{server.server_address[1]}")
    text = text.split("users:")[0] + "users:\n- name: kind-sandbox\n  user:\n    token: admin-token\n"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(text)
    try:
        yield server, KubeApi.from_kubeconfig(kubeconfig)
    finally:
        server.shutdown()
        server.server_close()


def test_nodes_and_label_node_over_http(api: tuple[ApiStandIn, KubeApi]) -> None:
    server, kube = api
    server.routes[("GET", "/api/v1/nodes")] = (200, fixture("nodes-verified.json"))
    server.routes[("PATCH", "/api/v1/nodes/sandbox-worker2")] = (
        200,
        fixture("nodes-verified.json")["items"][2],
    )
    assert [n.name for n in kube.nodes()] == [
        "sandbox-control-plane",
        "sandbox-worker",
        "sandbox-worker2",
    ]
    kube.label_node("sandbox-worker2", {"kubernetes.io/role": "agent", "virtualization": None})
    get, patch = server.seen
    assert get["auth"] == "Bearer admin-token"
    assert patch["method"] == "PATCH" and patch["content_type"] == "application/merge-patch+json"
    # null removes a key in a JSON merge patch (RFC 7386): how a profile switch drops a label.
    assert patch["body"] == {"metadata": {"labels": {"kubernetes.io/role": "agent", "virtualization": None}}}


def test_labelling_a_missing_node_is_a_404(api: tuple[ApiStandIn, KubeApi]) -> None:
    _, kube = api
    with pytest.raises(KubeApiError, match='nodes "sandbox-worker9" not found') as info:
        kube.label_node("sandbox-worker9", {"a": "b"})
    assert info.value.status == 404 and info.value.hint


def test_apply_is_a_server_side_apply_patch(api: tuple[ApiStandIn, KubeApi], tmp_path: Path) -> None:
    server, kube = api
    role = access_manifests(load_settings(tmp_path, environ={}))[2]
    path = resource_path(role)
    server.routes[("PATCH", path)] = (200, role)
    kube.apply(role)
    (request,) = server.seen
    assert request["path"] == path
    assert request["content_type"] == "application/apply-patch+yaml"
    assert sorted(request["query"].split("&")) == ["fieldManager=sandbox", "force=true"]
    assert request["body"] == role


def test_get_and_token(api: tuple[ApiStandIn, KubeApi]) -> None:
    server, kube = api
    server.routes[("GET", "/api/v1/namespaces/sandbox-tasks/secrets/airflow-tasks-token")] = (
        200,
        fixture("token-secret.json"),
    )
    assert (kube.service_account_token("sandbox-tasks", "airflow-tasks-token") or "").startswith("eyJ")
    assert kube.service_account_token("sandbox-tasks", "absent") is None
    assert kube.server_ca_data() == kubeconfig_ca_data((FIXTURES / "kubeconfig-kind.yaml").read_text())


def test_forbidden_is_an_error_with_a_hint(api: tuple[ApiStandIn, KubeApi]) -> None:
    server, kube = api
    server.routes[("GET", "/api/v1/nodes")] = (
        403,
        {"kind": "Status", "message": "nodes is forbidden", "code": 403},
    )
    with pytest.raises(KubeApiError, match="403: nodes is forbidden") as info:
        kube.nodes()
    assert "kubeconfig" in (info.value.hint or "")


def test_unreachable_api_is_one_cluster_error(tmp_path: Path) -> None:
    server = ApiStandIn()  # bound, then closed: nothing listens on that port any more
    port = server.server_address[1]
    server.server_close()
    text = (
        (FIXTURES / "kubeconfig-kind.yaml")
        .read_text()
        .replace("https://127.0.0.1:40123", f"http://127.0.0.1:{port}")
    )
    (tmp_path / "kc").write_text(text)
    kube = KubeApi.from_kubeconfig(tmp_path / "kc")
    with pytest.raises(ClusterError, match="cannot reach the Kubernetes API") as info:
        kube.nodes()
    assert "sandbox status" in (info.value.hint or "")


def test_missing_or_broken_kubeconfig(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match="no kubeconfig") as info:
        KubeApi.from_kubeconfig(tmp_path / "absent")
    assert "sandbox up" in (info.value.hint or "")
    (tmp_path / "bad").write_text("apiVersion: v1\nkind: Config\nclusters: []\n")
    with pytest.raises(ClusterError, match="cannot load kubeconfig"):
        KubeApi.from_kubeconfig(tmp_path / "bad")
