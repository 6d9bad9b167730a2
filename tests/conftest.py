"""Test tiers and their requirements.

A tier whose requirement is missing skips with the reason; with SANDBOX_STRICT=1 (set by
.ci/run on a machine that has everything) a skip for a missing requirement is a failure.
Shared helpers live in tests/support.py.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import REPO, STRICT, require, require_tool

# In-process Airflow (DagBag, KPO rendering) must not read or write the user's ~/airflow.
if "AIRFLOW_HOME" not in os.environ:
    _airflow_home = tempfile.mkdtemp(prefix="sandbox-tests-airflow-")
    atexit.register(shutil.rmtree, _airflow_home, ignore_errors=True)
    os.environ["AIRFLOW_HOME"] = _airflow_home
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

__all__ = ["REPO", "STRICT", "require", "require_tool"]


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port really in use: a listening socket the test holds."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test carries its tier marker from its folder."""
    for item in items:
        tier = Path(str(item.fspath)).relative_to(REPO / "tests").parts[0]
        if tier in ("unit", "integration", "containers", "e2e"):
            item.add_marker(getattr(pytest.mark, tier))
