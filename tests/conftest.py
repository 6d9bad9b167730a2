"""Test tiers and their requirements.

A tier whose requirement is missing skips with the reason; with SANDBOX_STRICT=1 (set by
.ci/run on a machine that has everything) a skip for a missing requirement is a failure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
STRICT = os.environ.get("SANDBOX_STRICT") == "1"


def require(condition: bool, reason: str) -> None:
    """Skip (or, in strict mode, fail) the calling test/fixture when `condition` is false."""
    if condition:
        return
    if STRICT:
        pytest.fail(f"requirement missing in strict mode: {reason}", pytrace=False)
    pytest.skip(reason)


def require_tool(name: str) -> str:
    path = shutil.which(name)
    require(path is not None, f"`{name}` is not installed")
    return path  # type: ignore[return-value]


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test carries its tier marker from its folder."""
    for item in items:
        tier = Path(str(item.fspath)).relative_to(REPO / "tests").parts[0]
        if tier in ("unit", "integration", "containers", "e2e"):
            item.add_marker(getattr(pytest.mark, tier))
