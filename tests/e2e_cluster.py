"""What the e2e test modules share: the sandbox's settings, the cluster's core API and the blob
container (module fixtures that skip, saying why, when no sandbox is up), and small readers."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from support import REPO, require

from sandbox.config import load_settings
from sandbox.core import blob
from sandbox.state import StateDir

SETTINGS = load_settings(REPO)
KUBECONFIG = StateDir(SETTINGS.state_dir).admin_kubeconfig
DATE = "2021-12-01"


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def core() -> Iterator[Any]:
    from kubernetes import client, config

    require(KUBECONFIG.is_file(), f"no sandbox is up (no {KUBECONFIG}): run `make up` first")
    api = config.new_client_from_config(config_file=str(KUBECONFIG))
    v1 = client.CoreV1Api(api)
    try:
        v1.list_node(_request_timeout=10)
    except Exception as exc:  # noqa: BLE001 - any failure means: no cluster to test against
        require(False, f"no cluster answers with {KUBECONFIG}: {exc}")
    yield v1
    api.close()


@pytest.fixture(scope="module")
def container() -> Any:
    from azure.storage.blob import BlobServiceClient

    port = SETTINGS.ports.azurite_blob
    require(_listening(port), f"no Azurite on 127.0.0.1:{port}: run `make up` first")
    connection = blob.connection_string(blob.blob_endpoint("127.0.0.1", port))
    return BlobServiceClient.from_connection_string(connection).get_container_client(
        blob.BLOB_CONTAINER
    )


def outputs(container: Any, dag_id: str) -> dict[str, bytes]:
    prefix = f"{dag_id}/{DATE}/"
    return {
        b.name.removeprefix(prefix): container.download_blob(b.name).readall()
        for b in container.list_blobs(name_starts_with=prefix)
    }


def virtual_node(core: Any) -> str:
    nodes = core.list_node(label_selector="type=virtual-kubelet").items
    assert len(nodes) == 1, [n.metadata.name for n in nodes]
    return nodes[0].metadata.name
