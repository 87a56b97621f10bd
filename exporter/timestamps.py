"""Wire timestamps: RFC 3339 with an offset, or integer epoch milliseconds, to UTC epoch ms."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

MINUTE_MS = 60_000
HOUR_MS = 3_600_000

# RFC 3339 date-time only: fromisoformat alone also takes ISO 8601 week dates, "+0200",
# "+02" and decimal commas, none of which the wire contract allows.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?", re.ASCII
)


class TimestampError(ValueError):
    """A timestamp that is neither RFC 3339 with an offset nor integer epoch ms."""


_EPOCH_MS = re.compile(r"-?[0-9]+")
_LONGEST_EPOCH = 30
"""More digits than any usable epoch has, and far fewer than ``int()`` refuses (4,300)."""


def epoch_or_text(text: str) -> str | int:
    """A query or command-line value as ``parse_timestamp`` takes it: ASCII digits (with a
    leading ``-``) are epoch ms, outside the range past 30 digits after leading zeros;
    anything else, fullwidth or other non-ASCII digits too, stays text and must be RFC 3339."""
    if not _EPOCH_MS.fullmatch(text):
        return text
    if len(text.lstrip("-").lstrip("0")) > _LONGEST_EPOCH:
        raise TimestampError(f"{text[:_LONGEST_EPOCH]}... ms is outside {_RANGE}")
    return int(text)


def parse_timestamp(value: str | int) -> int:
    """Return UTC epoch milliseconds (sub-millisecond digits truncated).

    Accepts an integer epoch in ms, or an RFC 3339 string that carries ``Z`` or an offset;
    a string without an offset is rejected rather than guessed to be UTC.
    """
    if isinstance(value, bool):
        raise TimestampError("expected RFC 3339 string or integer epoch ms, got a boolean")
    if isinstance(value, int):
        return check_range(value)
    if not _RFC3339.fullmatch(value):
        raise TimestampError(f"not an RFC 3339 date-time with offset: {value[:40]!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError as exc:
        raise TimestampError(f"not an RFC 3339 date-time: {value[:40]!r}") from exc
    if parsed.tzinfo is None:
        raise TimestampError(f"RFC 3339 timestamp needs Z or an offset: {value[:40]!r}")
    return check_range(datetime_to_ms(parsed))


def datetime_to_ms(when: datetime) -> int:
    """Aware datetime to epoch ms (floor). Subtracts instead of converting to UTC first, so
    the extremes of the datetime range (year 1 ahead of UTC, year 9999 behind it) give a
    number rather than an overflow; ``check_range`` decides whether it is usable."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise TimestampError("naive datetime")
    delta = when - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


MIN_MS = -62_135_596_800_000
"""0001-01-01T00:00:00Z, the first instant a datetime can hold."""
MAX_MS = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z, the last."""
_RANGE = "0001-01-01T00:00:00Z..9999-12-31T23:59:59.999Z"


def check_range(ms: int) -> int:
    """``ms`` if it lies between year 1 and year 9999 (UTC), else ``TimestampError``: epoch
    values outside it cannot be formatted, compared as dates or stored as snapshots."""
    if not MIN_MS <= ms <= MAX_MS:
        raise TimestampError(f"{ms} ms is outside {_RANGE}")
    return ms


def ms_to_datetime(ms: int) -> datetime:
    """Epoch ms to an aware UTC datetime."""
    return EPOCH + timedelta(milliseconds=ms)


def format_rfc3339(ms: int) -> str:
    """Epoch ms to RFC 3339 UTC with millisecond precision, e.g. ``2026-11-28T10:00:00.000Z``."""
    d = ms_to_datetime(ms)  # not strftime: its %Y drops the zero padding of years < 1000
    return (
        f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}"
        f".{ms % 1000:03d}Z"
    )


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
