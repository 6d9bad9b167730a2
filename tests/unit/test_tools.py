"""Pinned tools: URLs, checksum files, version parsing, and finding a usable binary (real
executables in a temp dir stand in for kind/kubectl of various versions)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox.config import load_settings
from sandbox.adapters.tools import parse_checksum, parse_tool_version, version_argv
from sandbox.core.tools import TOOLS, download_url, find_tool, supported
from sandbox.errors import DownloadError, PrerequisiteError
from sandbox.state import StateDir

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "kind"
DIGEST = "a" * 64


def test_download_urls_follow_the_release_layouts() -> None:
    assert download_url(TOOLS["kind"], os_name="linux", arch="amd64") == (
        f"https://github.com/kubernetes-sigs/kind/releases/download/v{TOOLS['kind'].version}/kind-linux-amd64"
    )
    assert download_url(TOOLS["kubectl"], os_name="darwin", arch="arm64") == (
        f"https://dl.k8s.io/release/v{TOOLS['kubectl'].version}/bin/darwin/arm64/kubectl"
    )
    assert download_url(
        TOOLS["kind"], base_url="http://127.0.0.1:9/", os_name="linux", arch="arm64"
    ).startswith("http://127.0.0.1:9/v")
    assert (
        TOOLS["kind"].checksum_suffix == ".sha256sum" and TOOLS["kubectl"].checksum_suffix == ".sha256"
    )


def test_checksum_files_both_formats() -> None:
    assert parse_checksum(f"{DIGEST}  kind-linux-amd64\n") == DIGEST
    assert parse_checksum(DIGEST.upper()) == DIGEST
    for bad in ("", "<html>Not Found</html>", "abc123  kind"):
        with pytest.raises(DownloadError, match="not a SHA-256 digest"):
            parse_checksum(bad)


def test_versions_from_each_tool() -> None:
    assert parse_tool_version("kind", (FIXTURES / "version.txt").read_text()) == (0, 33, 0)
    assert parse_tool_version("kubectl", (FIXTURES / "kubectl-version.json").read_text()) == (1, 37, 0)
    assert parse_tool_version("kubectl", "not json") is None
    assert version_argv("/x/kubectl", "kubectl") == ["/x/kubectl", "version", "--client", "-o", "json"]
    assert supported((1, 36, 2), TOOLS["kubectl"]) and not supported((1, 35, 9), TOOLS["kubectl"])
    assert supported((1, 38, 4), TOOLS["kubectl"]) and not supported((1, 39, 0), TOOLS["kubectl"])
    # kind's node image is pinned for its release: a newer minor on PATH is not used
    assert supported((0, 33, 1), TOOLS["kind"]) and not supported((0, 34, 0), TOOLS["kind"])
    assert not supported(None, TOOLS["kind"])


def fake_tool(folder: Path, name: str, output: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}\nEOF\n")
    path.chmod(0o755)
    return path


def test_find_tool_prefers_a_supported_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(tmp_path, environ={})
    bin_dir = tmp_path / "bin"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin:/bin")
    fake_tool(bin_dir, "kind", "kind v0.20.0 go1.20.4 linux/amd64")
    assert find_tool("kind", settings) is None  # too old
    fake_tool(bin_dir, "kind", "kind v0.35.0 go1.26.1 linux/amd64")
    assert find_tool("kind", settings) is None  # newer than the release the node image is pinned for
    tools_dir = StateDir(settings.state_dir).tools_dir
    downloaded = fake_tool(tools_dir, "kind", (FIXTURES / "version.txt").read_text().strip())
    assert find_tool("kind", settings) == downloaded
    fake_tool(bin_dir, "kubectl", (FIXTURES / "kubectl-version.json").read_text())
    assert find_tool("kubectl", settings) == bin_dir / "kubectl"


def test_unknown_tool(tmp_path: Path) -> None:
    with pytest.raises(PrerequisiteError, match="unknown tool"):
        find_tool("helm", load_settings(tmp_path, environ={}))
