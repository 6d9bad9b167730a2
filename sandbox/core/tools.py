"""Pinned `kind` and `kubectl`: use the installed one when its version is supported, otherwise download
the pinned release for this OS/arch into .sandbox/tools/, verified against its published SHA-256.

The system PATH is never touched; callers use the returned path. Downloads use urllib from the
standard library: it trusts the system's certificate store (corporate proxies with their own CA
work as for curl), follows GitHub's release redirects, honours *_proxy variables, and keeps this
bootstrap step free of third-party clients.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sandbox.config import Settings
from sandbox.core.kind_config import host_arch
from sandbox.errors import DownloadError, PrerequisiteError, SandboxError
from sandbox.proc import Completed, run
from sandbox.state import StateDir

Version = tuple[int, int, int]
DOWNLOAD_TIMEOUT_S = 60.0
CHUNK = 1 << 16


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


def parse_version(text: str) -> Version | None:
    match = re.search(r"v?(\d+)\.(\d+)(?:\.(\d+))?", text)
    return (int(match[1]), int(match[2]), int(match[3] or 0)) if match else None


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


def parse_checksum(text: str) -> str:
    """The hex digest from a `.sha256` (digest only) or `.sha256sum` (digest  filename) file."""
    first = text.strip().split()[0].lower() if text.strip() else ""
    if not re.fullmatch(r"[0-9a-f]{64}", first):
        raise DownloadError(
            f"the published checksum is not a SHA-256 digest: {text.strip()[:80]!r}",
            hint="the download server answered with something else; try again later or install the tool yourself",
        )
    return first


def version_argv(path: Path | str, name: str) -> list[str]:
    if name == "kubectl":
        return [str(path), "version", "--client", "-o", "json"]
    return [str(path), "version"]


def parse_tool_version(name: str, stdout: str) -> Version | None:
    """`kind version` prints `kind v0.33.0 go1.24 linux/amd64`; kubectl prints JSON."""
    if name == "kubectl":
        try:
            return parse_version(json.loads(stdout)["clientVersion"]["gitVersion"])
        except (ValueError, KeyError, TypeError):
            return None
    match = re.search(r"\bv(\d+\.\d+\.\d+)", stdout)
    return parse_version(match[1]) if match else None


def tool_version(
    path: Path | str, name: str, *, runner: Callable[..., Completed] = run
) -> Version | None:
    """The version the binary reports, or None when it cannot be run or says nothing parseable."""
    try:
        result = runner(version_argv(path, name), check=False, timeout=30)
    except SandboxError:
        return None
    return parse_tool_version(name, result.stdout) if result.returncode == 0 else None


def supported(version: Version | None, tool: ToolSpec) -> bool:
    minimum, below = parse_version(tool.minimum), parse_version(tool.below)
    return version is not None and minimum is not None and below is not None and minimum <= version < below


def find_tool(name: str, settings: Settings, *, runner: Callable[..., Completed] = run) -> Path | None:
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
    runner: Callable[..., Completed] = run,
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


def download_verified(url: str, checksum_url: str, target: Path) -> None:
    """Download to a temp file beside `target`, check SHA-256, then make it executable and move it in.

    On any failure nothing is left behind: no partial file, nothing at `target` that was not there.
    """
    expected = parse_checksum(_fetch(checksum_url).decode(errors="replace"))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    except OSError as exc:
        raise DownloadError(
            f"cannot write to {target.parent}: {exc.strerror}",
            hint="make the project's .sandbox/ folder writable for your user",
        ) from None
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, _open(url) as response:
            while chunk := response.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != expected:
            raise DownloadError(
                f"checksum mismatch for {url}: got sha256 {digest.hexdigest()}, published {expected}",
                hint="the download was corrupted or tampered with; nothing was installed. Try again; if it "
                "persists, install the tool yourself",
            )
        tmp.chmod(0o755)
        os.replace(tmp, target)
    except OSError as exc:
        raise DownloadError(f"cannot download {url}: {exc}", hint=_NETWORK_HINT) from None
    finally:
        tmp.unlink(missing_ok=True)


_NETWORK_HINT = "check your internet connection or proxy (https_proxy), or install the tool yourself and put it on PATH"


def _open(url: str):
    try:
        return urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S)  # noqa: S310 (https or test loopback)
    except urllib.error.HTTPError as exc:
        raise DownloadError(
            f"cannot download {url}: HTTP {exc.code} {exc.reason}", hint=_NETWORK_HINT
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"cannot download {url}: {reason}", hint=_NETWORK_HINT) from None


def _fetch(url: str) -> bytes:
    with _open(url) as response:
        try:
            return response.read()
        except OSError as exc:
            raise DownloadError(f"cannot download {url}: {exc}", hint=_NETWORK_HINT) from None
