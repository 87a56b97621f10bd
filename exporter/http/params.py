"""Query-parameter parsing for the read API: times (RFC 3339 or epoch ms), periods, ranges
and limits. Every problem is a 400 that names the parameter and the limit."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from exporter.errors import BadRequest
from exporter.records import Range
from exporter.timestamps import HOUR_MS, TimestampError, epoch_or_text, parse_timestamp

PERIOD_MS = {"hourly": HOUR_MS, "daily": 24 * HOUR_MS}


def bad(param: str, message: str) -> BadRequest:
    return BadRequest(f"{param}: {message}", [{"field": param, "message": message}])


def reject_unknown(query: Mapping[str, str], allowed: Iterable[str]) -> None:
    """400 for a parameter the endpoint does not take, or one given more than once (a
    second value would otherwise be silently ignored)."""
    allowed = tuple(allowed)
    values = getattr(query, "getall", None)  # a request's query is a multidict
    for name in sorted(query):
        if name not in allowed:
            raise bad(name, f"unknown parameter; allowed: {', '.join(allowed) or 'none'}")
        if values is not None and len(values(name)) > 1:
            raise bad(name, "given more than once; pass it once")


def parse_time(param: str, text: str) -> int:
    """RFC 3339 with offset, or integer epoch milliseconds -> epoch ms."""
    try:
        return parse_timestamp(epoch_or_text(text))
    except TimestampError as exc:
        raise bad(param, f"expected RFC 3339 with offset or epoch ms ({exc})") from None


_INTEGER = re.compile(r"-?[0-9]{1,19}")


def parse_int(param: str, text: str, low: int, high: int) -> int:
    if _INTEGER.fullmatch(text) is None:  # int() also takes " 5", "+5", "1_0" and "٣"
        raise bad(param, f"expected an integer from {low} to {high}")
    value = int(text)
    if not low <= value <= high:
        raise bad(param, f"must be from {low} to {high}, got {value}")
    return value


def parse_bounds(query: Mapping[str, str]) -> tuple[int, int]:
    """``start`` and ``end``: both required, epoch ms, start < end."""
    for name in ("start", "end"):
        if name not in query:
            raise bad(name, "required (RFC 3339 with offset or epoch ms)")
    start, end = parse_time("start", query["start"]), parse_time("end", query["end"])
    if start >= end:
        raise bad("start", "must be before end")
    return start, end


def parse_range(query: Mapping[str, str], max_windows: int) -> Range:
    """``period`` (hourly|daily), ``start`` and ``end`` (required, start < end), and at most
    ``max_windows`` windows in between."""
    period = query.get("period", "")
    if period not in PERIOD_MS:
        raise bad("period", f"required; one of {', '.join(PERIOD_MS)}")
    start, end = parse_bounds(query)
    found = Range(period, start, end)
    windows = -(-(end - start) // PERIOD_MS[period])
    if windows > max_windows:
        raise bad(
            "end",
            f"the range holds {windows} {period} windows; at most {max_windows}"
            " (max_range_rows) per request",
        )
    return found


def parse_org(query: Mapping[str, str]) -> str | None:
    org_id = query.get("org_id")
    if org_id is not None and not 1 <= len(org_id) <= 128:
        raise bad("org_id", "must be 1 to 128 characters")
    return org_id
