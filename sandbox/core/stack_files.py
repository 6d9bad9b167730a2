"""What `up` renders for compose and records about the stack, all in `.sandbox/` (pure, no engine).

.sandbox/airflow.env and compose.env (0600) are every input compose reads besides its files;
stack.json says how the stack was brought up (mode, name), so `down` and `status` know whether
a cluster belongs to it; stack.fingerprint hashes what compose read at the last healthy `up`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from sandbox.core.airflow_config import airflow_env, compose_topology, render_env_file
from sandbox.config import AZURITE_IMAGE, POSTGRES_IMAGE, RABBITMQ_IMAGE, Settings, airflow_image
from sandbox.core import blob
from sandbox.errors import ConfigError
from sandbox.state import Secrets, StateDir, write_private_if_changed

Mode = Literal["full", "stack-only"]
KIND_OVERRIDE = "kind.yaml"  # beside the main compose file
AZURITE_BLOB_PORT = 10000


# --- the record of how the stack was brought up ---------------------------------------------


def read_stack_record(state: StateDir) -> dict[str, Any]:
    try:
        data = json.loads(state.stack_record.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_mode(state: StateDir) -> Mode | None:
    mode = read_stack_record(state).get("mode")
    return mode if mode in ("full", "stack-only") else None


def write_mode(state: StateDir, mode: Mode, name: str) -> None:
    write_private_if_changed(state.stack_record, json.dumps({"mode": mode, "name": name}))


def check_not_renamed(settings: Settings, state: StateDir) -> None:
    """Refuse to act under a new `name` while containers or a cluster of the old one exist here:
    `up` would start a second sandbox beside them, `down` would stop nothing and lose track."""
    from sandbox.core.cluster import read_cluster_record

    cluster = read_cluster_record(state)
    recorded = {read_stack_record(state).get("name"), cluster.name if cluster else None} - {None}
    old = sorted(str(n) for n in recorded if n != settings.name)
    if old:
        raise ConfigError(
            f"this project's sandbox runs as {old[0]!r}, but the configured name is now {settings.name!r}",
            hint=f"stop the old one first: `SANDBOX_NAME={old[0]} sandbox down` (its data stays unless "
            f"--purge), then `sandbox up`; or set name back to {old[0]!r}",
        )


# --- compose inputs ----------------------------------------------------------------------------


def compose_files(settings: Settings, mode: Mode) -> tuple[Path, ...]:
    """The main file users run; plus the kind wiring when a cluster is there."""
    main = settings.compose_file
    return (main,) if mode == "stack-only" else (main, main.parent / KIND_OVERRIDE)


def azurite_alias(settings: Settings) -> str:
    """Azurite's name on the `kind` network, where task pods resolve it."""
    return f"{settings.name}-azurite"


def pod_blob_endpoint(settings: Settings) -> str:
    return blob.blob_endpoint(azurite_alias(settings), AZURITE_BLOB_PORT)


def compose_variables(
    settings: Settings, state: StateDir, airflow_uid: int, secrets: Secrets, airflow_ref: str | None = None
) -> dict[str, str]:
    """Every ${VAR} the compose files use; rendered into .sandbox/compose.env. `airflow_ref`:
    the Airflow image `up` resolved (official, or extended with airflow_requirements)."""
    return {
        "SANDBOX_AIRFLOW_IMAGE": airflow_ref or airflow_image(),
        "SANDBOX_POSTGRES_IMAGE": POSTGRES_IMAGE,
        "SANDBOX_RABBITMQ_IMAGE": RABBITMQ_IMAGE,
        "SANDBOX_AZURITE_IMAGE": AZURITE_IMAGE,
        "SANDBOX_AIRFLOW_UID": str(airflow_uid),
        "SANDBOX_AIRFLOW_ENV_FILE": str(state.airflow_env_file),
        "SANDBOX_AIRFLOW_KUBECONFIG": str(state.airflow_kubeconfig),
        "SANDBOX_PASSWORDS_FILE": str(state.passwords_file),
        "SANDBOX_DAGS_DIR": str(settings.dags_folder),
        "SANDBOX_POSTGRES_PASSWORD": secrets.postgres_password,
        "SANDBOX_RABBITMQ_PASSWORD": secrets.rabbitmq_password,
        "SANDBOX_PORT_API": str(settings.ports.api),
        "SANDBOX_PORT_RABBITMQ_UI": str(settings.ports.rabbitmq_ui),
        "SANDBOX_PORT_FLOWER": str(settings.ports.flower),
        "SANDBOX_PORT_AZURITE_BLOB": str(settings.ports.azurite_blob),
        "SANDBOX_AZURITE_ALIAS": azurite_alias(settings),
    }


def render_stack_files(
    settings: Settings, state: StateDir, airflow_uid: int, mode: Mode, airflow_ref: str | None = None
) -> bool:
    """Write .sandbox/airflow.env and .sandbox/compose.env (0600); True when either changed."""
    secrets = state.secrets()
    env = airflow_env(settings, secrets, compose_topology(settings, with_cluster=mode == "full"))
    changed = write_private_if_changed(state.airflow_env_file, render_env_file(env))
    variables = compose_variables(settings, state, airflow_uid, secrets, airflow_ref)
    changed |= write_private_if_changed(state.compose_env_file, render_env_file(variables))
    return changed


def stack_fingerprint(files: Sequence[Path], state: StateDir) -> str:
    """What compose would act on: the compose files and both rendered env files."""
    digest = hashlib.sha256()
    for path in (*files, state.compose_env_file, state.airflow_env_file):
        digest.update(str(path).encode() + b"\0" + (path.read_bytes() if path.exists() else b"") + b"\0")
    return digest.hexdigest()
