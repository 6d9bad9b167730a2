"""Object storage as on Azure: Azurite (the Blob emulator) and how tasks find it.

Task pods get the connection string from the Secret below (env AZURE_STORAGE_CONNECTION_STRING);
Airflow processes get it through airflow_env(). Steps write under <container>/<dag>/<date>/.
"""

from __future__ import annotations

from typing import Any

# Azurite's well-known development account and key (published in Azurite's documentation; they
# grant access to the local emulator only, never to Azure).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
BLOB_CONTAINER = "sandbox"
BLOB_SECRET_NAME = "sandbox-blob"
BLOB_SECRET_KEY = "connection_string"
BLOB_ENV = "AZURE_STORAGE_CONNECTION_STRING"


def blob_endpoint(host: str, port: int = 10000) -> str:
    return f"http://{host}:{port}/{AZURITE_ACCOUNT}"


def connection_string(endpoint: str) -> str:
    return (
        "DefaultEndpointsProtocol=http;"
        f"AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};BlobEndpoint={endpoint};"
    )


def blob_secret_manifest(namespace: str, endpoint: str) -> dict[str, Any]:
    """The Secret `sandbox up` creates in the task namespace for pods that use blob storage."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": BLOB_SECRET_NAME, "namespace": namespace},
        "type": "Opaque",
        "stringData": {BLOB_SECRET_KEY: connection_string(endpoint)},
    }
