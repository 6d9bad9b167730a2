"""A task image's build context: which files Docker would send, their content hash, the tar we send.

The same entry list feeds the hash and the tar, so the tag `<name>:<hash12>` names exactly what
was built. `.dockerignore` follows Docker's documented rules: `#` comments, Go filepath.Match
patterns (`*`, `?`, `[...]`, `\\` escapes) plus `**` for any number of directories, leading and
trailing slashes ignored, `!` re-includes, the last matching line wins, and a pattern matching a
directory excludes everything under it. The Dockerfile and .dockerignore are always sent.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal

from sandbox.errors import ConfigError

# Fixed metadata in the tar: identical content gives an identical context (and build cache hits)
# whatever the checkout's timestamps. 1980-01-01, the earliest time zip-based tools accept.
_TAR_MTIME = 315532800
HASH_VERSION = "sandbox-context-v1"

EntryKind = Literal["file", "dir", "symlink"]


@dataclass(frozen=True)
class IgnoreRule:
    pattern: str
    negated: bool
    regex: re.Pattern[str]


@dataclass(frozen=True)
class ContextEntry:
    """One path of the build context, relative to its root, POSIX-style."""

    path: str
    kind: EntryKind
    mode: int
    source: Path


def _translate(pattern: str) -> str:
    """A Go filepath.Match pattern (plus Docker's `**`) as a regular expression."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "*":
            if pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):
                    i += 1
                    out.append("(?:.*/)?")
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif char == "[":
            end = pattern.find("]", i + 2 if pattern.startswith(("[^", "[!"), i) else i + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1 : end]
                negate = body[:1] in ("^", "!")
                body = body[1:] if negate else body
                body = body.replace("\\", "\\\\")
                out.append(f"[^/{body}]" if negate else f"[{body}]")
                i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def parse_dockerignore(text: str) -> list[IgnoreRule]:
    rules: list[IgnoreRule] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        if negated:
            line = line[1:].strip()
        cleaned = os.path.normpath(line).replace(os.sep, "/").strip("/")
        if cleaned in ("", "."):
            continue
        rules.append(IgnoreRule(cleaned, negated, re.compile(_translate(cleaned) + r"\Z")))
    return rules


def is_ignored(path: str, rules: Iterable[IgnoreRule]) -> bool:
    """Whether Docker leaves `path` out of the context: the last rule matching it or a parent wins."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for rule in rules:
        if any(rule.regex.match(candidate) for candidate in candidates):
            ignored = not rule.negated
    return ignored


def context_entries(root: Path, dockerfile: str = "Dockerfile") -> list[ContextEntry]:
    """Every path Docker would send for `root`, sorted; symlinks are kept as links, not followed."""
    ignore_file = root / ".dockerignore"
    try:
        rules = parse_dockerignore(ignore_file.read_text(encoding="utf-8")) if ignore_file.is_file() else []
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{ignore_file} is not UTF-8 text ({exc.reason})", hint="save it as UTF-8") from None
    has_exceptions = any(rule.negated for rule in rules)
    always = {dockerfile, ".dockerignore"}
    entries: list[ContextEntry] = []
    for current, dirs, files in os.walk(root):
        rel_dir = Path(current).relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else f"{rel_dir}/"
        kept_dirs = []
        for name in sorted(dirs):
            source = Path(current) / name
            rel = prefix + name
            if source.is_symlink():
                files.append(name)
                continue
            if is_ignored(rel, rules):
                if has_exceptions:
                    kept_dirs.append(name)  # an exception may re-include something inside
                continue
            kept_dirs.append(name)
            entries.append(ContextEntry(rel, "dir", stat.S_IMODE(source.lstat().st_mode), source))
        dirs[:] = kept_dirs
        for name in sorted(files):
            source = Path(current) / name
            rel = prefix + name
            if is_ignored(rel, rules) and rel not in always:
                continue
            st = source.lstat()
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                continue  # sockets, fifos, devices: nothing a build can COPY
            kind: EntryKind = "symlink" if stat.S_ISLNK(st.st_mode) else "file"
            entries.append(ContextEntry(rel, kind, stat.S_IMODE(st.st_mode), source))
    return sorted(entries, key=lambda e: e.path)


def context_hash(
    entries: Iterable[ContextEntry], *, dockerfile: str = "Dockerfile", build_args: Mapping[str, str]
) -> str:
    """sha256 over paths, kinds, modes, contents (link targets) and build args: same input, same tag."""
    digest = hashlib.sha256()

    def put(*fields: str | bytes) -> None:
        for item in fields:
            data = item.encode() if isinstance(item, str) else item
            digest.update(len(data).to_bytes(8, "big"))
            digest.update(data)

    put(HASH_VERSION, "dockerfile", dockerfile)
    for key in sorted(build_args):
        put("arg", key, build_args[key])
    for entry in entries:
        put(entry.kind, entry.path, f"{entry.mode:o}")
        if entry.kind == "file":
            file_digest = hashlib.sha256()
            with open(entry.source, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    file_digest.update(chunk)
            put(file_digest.digest())
        elif entry.kind == "symlink":
            put(os.readlink(entry.source))
    return digest.hexdigest()


def write_context_tar(entries: Iterable[ContextEntry], out: BinaryIO) -> None:
    """The context as a tar with fixed owner and timestamps (contents and modes as on disk)."""
    with tarfile.open(fileobj=out, mode="w") as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.path)
            info.mode = entry.mode
            info.mtime = _TAR_MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if entry.kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif entry.kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = os.readlink(entry.source)
                tar.addfile(info)
            else:
                info.size = entry.source.stat().st_size
                with open(entry.source, "rb") as handle:
                    tar.addfile(info, handle)
    out.seek(0)

