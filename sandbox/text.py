"""Text rules shared by every layer."""

from __future__ import annotations


def last_line(text: str, default: str = "") -> str:
    """The last non-blank line, stripped: what a failing command or traceback says last."""
    for line in reversed(text.splitlines()):
        if line.strip():
            return line.strip()
    return default


def trimmed(lines: list[str]) -> list[str]:
    """`lines` without the blank lines at its end."""
    kept = list(lines)
    while kept and not kept[-1].strip():
        kept.pop()
    return kept
