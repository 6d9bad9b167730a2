"""The e2e tier's shared fixtures: kubectl against the real kind cluster `make up` created."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import pytest

from sandbox.config import load_settings
from sandbox.core.tools import find_tool
from sandbox.proc import Completed, run
from sandbox.state import StateDir
from support import REPO, require

SETTINGS = load_settings(REPO)
KUBECONFIG = StateDir(SETTINGS.state_dir).admin_kubeconfig

Kubectl = Callable[..., Completed]


@pytest.fixture(scope="session")
def kubectl() -> Iterator[Kubectl]:
    """`kubectl --kubeconfig .sandbox/kubeconfig-admin ARGS…`; skips when no cluster answers."""
    binary = find_tool("kubectl", SETTINGS) or shutil.which("kubectl")
    require(binary is not None, "kubectl is not installed")
    require(KUBECONFIG.is_file(), f"no admin kubeconfig at {KUBECONFIG}: run `make up` first")

    def call(*args: str, input: str | None = None, check: bool = True) -> Completed:
        return run(
            [str(binary), "--kubeconfig", str(KUBECONFIG), *args], input=input, check=check, timeout=60
        )

    reachable = call("version", "-o", "json", check=False)
    require(
        reachable.returncode == 0,
        f"no cluster reachable with {KUBECONFIG}: {reachable.stderr.strip()[-200:]}",
    )
    yield call
