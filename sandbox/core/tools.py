"""Pinned `kind` and `kubectl`: use the installed one when its version is supported, otherwise download
the pinned release for this OS/arch into .sandbox/tools/, verified against its published SHA-256.

The system PATH is never touched; callers use the returned path. Running the binaries and the
download itself are sandbox.adapters.tools'.
"""

from __future__ import annotations

import os
import platform
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sandbox.adapters.tools import Version, download_verified, parse_version, tool_version
from sandbox.config import Settings
from sandbox.core.kind_config import host_arch
from sandbox.errors import DownloadError, PrerequisiteError
from sandbox.proc import Runner, run
from sandbox.state import StateDir


@dataclass(frozen=True)
class ToolSpec:
    name: str
    version: str  # the pinned release, downloaded when needed
    minimum: str  # the oldest installed version the sandbox accepts
    below: str  # the first installed version it no longer accepts
    base_url: str
    binary_path: str  # format fields: version, os, arch (relative to base_url)
    checksum_suffix: str  # the published checksum file next to the binary


# The versions the sandbox supports, named here only. kind's node image in kind-config.yaml is
# the one its release notes list for kind's pinned version, and kind says to use a node image
# built for the release in use: a newer kind on PATH is not used (its minor may change the node
# image format), the pinned one is downloaded instead. kubectl stays within one minor version of
# that node image's Kubernetes (v1.37): 1.36 to 1.38.
TOOLS: dict[str, ToolSpec] = {
    "kind": ToolSpec(
        name="kind",
        version="0.33.0",
        minimum="0.33.0",
        below="0.34.0",
        base_url="https://github.com/kubernetes-sigs/kind/releases/download",
        binary_path="v{version}/kind-{os}-{arch}",
        checksum_suffix=".sha256sum",
    ),
    "kubectl": ToolSpec(
        name="kubectl",
        version="1.37.0",
        minimum="1.36.0",
        below="1.39.0",
        base_url="https://dl.k8s.io/release",
        binary_path="v{version}/bin/{os}/{arch}/kubectl",
        checksum_suffix=".sha256",
    ),
}
KIND_MISSING_HINT = "`sandbox up` downloads a pinned kind; or install it: https://kind.sigs.k8s.io"


def spec(name: str) -> ToolSpec:
    try:
        return TOOLS[name]
    except KeyError:
        raise PrerequisiteError(
            f"unknown tool {name!r}", hint=f"known tools: {', '.join(TOOLS)}"
        ) from None


def host_os() -> str:
    system = platform.system().lower()
    if system not in ("linux", "darwin"):
        raise PrerequisiteError(
            f"cannot download tools for {platform.system()}",
            hint="install kind and kubectl yourself (https://kind.sigs.k8s.io), or use WSL2 / Linux / macOS",
        )
    return system


def download_url(
    tool: ToolSpec, *, base_url: str | None = None, os_name: str | None = None, arch: str | None = None
) -> str:
    path = tool.binary_path.format(
        version=tool.version, os=os_name or host_os(), arch=arch or host_arch()
    )
    return f"{(base_url or tool.base_url).rstrip('/')}/{path}"


def supported(version: Version | None, tool: ToolSpec) -> bool:
    minimum, below = parse_version(tool.minimum), parse_version(tool.below)
    return version is not None and minimum is not None and below is not None and minimum <= version < below


def find_tool(name: str, settings: Settings, *, runner: Runner = run) -> Path | None:
    """A usable binary: the sandbox's downloaded one, else one on PATH; None if neither is a supported version."""
    tool = spec(name)
    candidates = [StateDir(settings.state_dir).tools_dir / name]
    on_path = shutil.which(name)
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if (
            candidate.is_file()
            and os.access(candidate, os.X_OK)
            and supported(tool_version(candidate, name, runner=runner), tool)
        ):
            return candidate
    return None


def ensure_tool(
    name: str,
    settings: Settings,
    *,
    base_url: str | None = None,
    runner: Runner = run,
    reporter_info: Callable[[str], None] | None = None,
) -> Path:
    """find_tool, or download and verify the pinned release into .sandbox/tools/ and return its path."""
    found = find_tool(name, settings, runner=runner)
    if found is not None:
        return found
    tool = spec(name)
    url = download_url(tool, base_url=base_url)
    if reporter_info:
        reporter_info(
            f"{name} missing or not {tool.minimum} <= version < {tool.below}: downloading {name} v{tool.version} from {url}"
        )
    target = StateDir(settings.state_dir).tools_dir / name
    download_verified(url, url + tool.checksum_suffix, target)
    reported = tool_version(target, name, runner=runner)
    if not supported(reported, tool):
        target.unlink(missing_ok=True)
        raise DownloadError(
            f"the downloaded {name} does not run here or reports an unexpected version ({reported})",
            hint=f"install {name} v{tool.version} (>= {tool.minimum}, < {tool.below}) yourself and make sure it is on PATH",
        )
    return target


class PinnedTools:
    """find_tool/ensure_tool for one sandbox: what sandbox.core.wiring hands to the steps."""

    def __init__(self, settings: Settings, *, runner: Runner = run) -> None:
        self.settings = settings
        self.runner = runner

    def find(self, name: str) -> Path | None:
        return find_tool(name, self.settings, runner=self.runner)

    def ensure(self, name: str, on_info: Callable[[str], None]) -> Path:
        return ensure_tool(name, self.settings, runner=self.runner, reporter_info=on_info)
