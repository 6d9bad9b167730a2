"""Logical dates as users type them: `YYYY-MM-DD` is midnight UTC; ISO-8601 needs an offset."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sandbox.errors import UsageError

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_HINT = "use YYYY-MM-DD (midnight UTC) or ISO-8601 with an offset, e.g. 2021-12-01T06:00:00+01:00"


def parse_logical_date(text: str, *, option: str = "--date") -> datetime:
    """An aware UTC datetime, or a UsageError saying what was wrong and what to type."""
    value = text.strip()
    try:
        if _DAY.fullmatch(value):
            return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a valid date", hint=_HINT) from None
    if "T" not in value.upper():
        raise UsageError(f"{option} {text!r} is not a valid date", hint=_HINT)
    if parsed.tzinfo is None:
        raise UsageError(
            f"{option} {text!r} has a time but no UTC offset, so it is ambiguous", hint=_HINT
        )
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise UsageError(f"{option} {text!r} is out of range in UTC", hint=_HINT) from None


def format_logical_date(value: datetime | None) -> str:
    """Midnight-UTC dates print as the day; anything else as ISO-8601 in UTC."""
    if value is None:
        return "-"
    value = value.astimezone(UTC)
    if (value.hour, value.minute, value.second, value.microsecond) == (0, 0, 0, 0):
        return value.strftime("%Y-%m-%d")
    return value.isoformat()
