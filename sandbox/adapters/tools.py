"""The kind and kubectl binaries: the only code that runs their version commands or downloads
a release (urllib from the standard library: it trusts the system's certificate store, so a
corporate proxy with its own CA works as for curl, follows GitHub's release redirects and honours
*_proxy variables)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from sandbox.errors import DownloadError, SandboxError
from sandbox.proc import Runner, run

Version = tuple[int, int, int]
DOWNLOAD_TIMEOUT_S = 60.0
CHUNK = 1 << 16


def parse_version(text: str) -> Version | None:
    match = re.search(r"v?(\d+)\.(\d+)(?:\.(\d+))?", text)
    return (int(match[1]), int(match[2]), int(match[3] or 0)) if match else None


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
    path: Path | str, name: str, *, runner: Runner = run
) -> Version | None:
    """The version the binary reports, or None when it cannot be run or says nothing parseable."""
    try:
        result = runner(version_argv(path, name), check=False, timeout=30)
    except SandboxError:
        return None
    return parse_tool_version(name, result.stdout) if result.returncode == 0 else None


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
