"""One native Airflow stack per session, shared by the run-dag/backfill/dags tests.

Tests isolate themselves by DAG id and logical date instead of restarting anything.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_stack import AirflowStack, ServicesUnavailable, services
from support import REPO, require

SANDBOX = str(Path(sys.executable).parent / "sandbox")


@pytest.fixture(scope="session")
def airflow_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    with ExitStack() as stack:
        try:
            found = stack.enter_context(services())
        except ServicesUnavailable as exc:
            require(False, str(exc))
        yield stack.enter_context(
            AirflowStack(found, tmp_path_factory.mktemp("airflow"), dags_source=REPO / "tests" / "dags")
        )


@dataclass(frozen=True)
class Cli:
    """The `sandbox` console script, run as a user would, pointed at the stack's project dir."""

    stack: AirflowStack

    def __call__(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [SANDBOX, *args], env=self.stack.cli_env(), capture_output=True, text=True,
            timeout=timeout,
        )
        print(f"$ sandbox {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [SANDBOX, *args], env=self.stack.cli_env(), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )

    def json(self, *args: str, expect: int = 0) -> dict[str, Any]:
        proc = self(*args, "--json")
        assert proc.returncode == expect, proc.stderr
        return json.loads(proc.stdout)


@pytest.fixture
def sandbox(airflow_stack: AirflowStack) -> Cli:
    return Cli(airflow_stack)


@pytest.fixture
def api(airflow_stack: AirflowStack) -> Iterator[Any]:
    from sandbox.adapters.airflow_api import AirflowApi

    with AirflowApi(airflow_stack.url, "admin", airflow_stack.admin_password) as client:
        yield client
