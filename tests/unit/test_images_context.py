"""Build contexts: .dockerignore as Docker reads it, a content hash that moves only when it must."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from sandbox.core.build_context import (
    context_entries,
    context_hash,
    is_ignored,
    parse_dockerignore,
    write_context_tar,
)


@pytest.mark.parametrize(
    ("patterns", "path", "ignored"),
    [
        ("*.pyc", "a.pyc", True),
        ("*.pyc", "pkg/a.pyc", False),  # `*` stops at `/`: only the root level
        ("**/*.pyc", "pkg/sub/a.pyc", True),
        ("**/*.pyc", "a.pyc", True),
        ("data", "data/big/file.parquet", True),  # a directory pattern covers its contents
        ("/data/", "data/x", True),  # leading/trailing slashes are ignored
        ("./build", "build/x", True),  # cleaned like filepath.Clean
        ("data\n!data/keep.txt", "data/keep.txt", False),  # exceptions re-include
        ("data\n!data/keep.txt", "data/other.txt", True),
        ("!x\n*", "x", True),  # the last matching line wins
        ("te?t.py", "test.py", True),
        ("te?t.py", "te/t.py", False),  # `?` never matches `/`
        ("[a-c]*.md", "b-notes.md", True),
        ("[^a-c]*.md", "b-notes.md", False),
        ("# comment\n\n  notes.md  ", "notes.md", True),
        ("docs/**", "docs/a/b/c.md", True),
        ("docs/**/draft.md", "docs/draft.md", True),
        ("docs/**/draft.md", "docs/x/y/draft.md", True),
        ("\\*literal", "*literal", True),
        ("\\*literal", "xliteral", False),
    ],
)
def test_dockerignore_matches_like_docker(patterns: str, path: str, ignored: bool) -> None:
    assert is_ignored(path, parse_dockerignore(patterns)) is ignored


def _context(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM x\nCOPY src /app\n")
    (root / "src" / "pkg" / "main.py").write_text("print('v1')\n")
    (root / "src" / "run.sh").write_text("#!/bin/sh\n")
    (root / "notes.md").write_text("not shipped\n")
    (root / ".venv" / "lib").mkdir(parents=True)
    (root / ".venv" / "lib" / "huge.so").write_text("binary\n")
    (root / ".dockerignore").write_text("*.md\n.venv\nDockerfile\n")
    return root


def test_entries_are_sorted_ignore_aware_and_keep_dockerfile(tmp_path: Path) -> None:
    root = _context(tmp_path)
    paths = [e.path for e in context_entries(root)]
    assert paths == sorted(paths)
    assert "notes.md" not in paths and not any(p.startswith(".venv") for p in paths)
    assert {"Dockerfile", ".dockerignore", "src/pkg/main.py", "src", "src/pkg"} <= set(paths)


def test_hash_moves_with_content_mode_and_args_not_with_ignored_files(tmp_path: Path) -> None:
    root = _context(tmp_path)

    def digest(**args: str) -> str:
        return context_hash(context_entries(root), build_args=args)

    first = digest()
    assert digest() == first
    (root / "notes.md").write_text("edited\n")
    (root / ".venv" / "lib" / "huge.so").write_text("rebuilt\n")
    os.utime(root / "src" / "pkg" / "main.py", (1, 1))  # timestamps are not content
    assert digest() == first
    (root / "src" / "pkg" / "main.py").write_text("print('v2')\n")
    second = digest()
    assert second != first
    os.chmod(root / "src" / "run.sh", 0o755)
    third = digest()
    assert third != second
    assert digest(BASE_IMAGE="python:3.12-slim") != third
    (root / "src" / "pkg" / "new.py").write_text("")
    assert digest() != third


def test_hash_does_not_confuse_boundaries_between_fields(tmp_path: Path) -> None:
    a = tmp_path / "a"
    b = tmp_path / "b"
    for root in (a, b):
        root.mkdir()
        (root / "Dockerfile").write_text("FROM x\n")
    (a / "ab").write_text("c")
    (b / "a").write_text("bc")
    assert context_hash(context_entries(a), build_args={}) != context_hash(context_entries(b), build_args={})


def test_tar_holds_exactly_the_entries_with_fixed_metadata(tmp_path: Path) -> None:
    root = _context(tmp_path)
    (root / "src" / "link").symlink_to("pkg/main.py")
    entries = context_entries(root)
    buffer = io.BytesIO()
    write_context_tar(entries, buffer)
    with tarfile.open(fileobj=buffer) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert sorted(members) == [e.path for e in entries]
        assert members["src/link"].issym() and members["src/link"].linkname == "pkg/main.py"
        assert tar.extractfile("src/pkg/main.py").read() == b"print('v1')\n"  # type: ignore[union-attr]
        assert {m.mtime for m in members.values()} == {315532800}
        assert {(m.uid, m.gid) for m in members.values()} == {(0, 0)}


def test_special_files_are_not_part_of_the_context(tmp_path: Path) -> None:
    root = _context(tmp_path)
    os.mkfifo(root / "src" / "pipe")  # reading it would block the build forever
    assert "src/pipe" not in [e.path for e in context_entries(root)]


def test_a_non_utf8_dockerignore_is_a_config_error_naming_it(tmp_path: Path) -> None:
    from sandbox.errors import ConfigError

    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / ".dockerignore").write_bytes(b"\xff\xfe*.md\n")
    with pytest.raises(ConfigError, match=r"\.dockerignore is not UTF-8 text"):
        context_entries(tmp_path)
