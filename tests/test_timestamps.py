"""Wire timestamps: RFC 3339 with an offset or epoch ms, to UTC epoch ms and back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.timestamps import (
    MAX_MS,
    MIN_MS,
    TimestampError,
    datetime_to_ms,
    epoch_or_text,
    format_rfc3339,
    ms_to_datetime,
    parse_timestamp,
)


def _ms(when: datetime) -> int:
    return int((when - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1000)


T0_MS = _ms(datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-28T10:00:00Z", datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)),
        ("2026-11-28T10:00:00z", datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)),
        ("2026-11-28t10:00:00Z", datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)),
        ("2026-11-28 10:00:00Z", datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)),
        ("2026-11-28T12:00:00+02:00", datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)),
        ("2026-11-28T05:30:00-04:30", datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)),
        ("2026-11-28T10:00:00+00:00", datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)),
        ("2026-11-29T01:00:00+15:00", datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)),
        ("2026-11-28T01:00:00+02:00", datetime(2026, 11, 27, 23, 0, 0, tzinfo=UTC)),
        ("1970-01-01T00:00:00Z", datetime(1970, 1, 1, tzinfo=UTC)),
    ],
)
def test_parse_timestamp_rfc3339_to_utc(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == _ms(expected)


@pytest.mark.parametrize(
    ("text", "expected_ms"),
    [
        ("2026-11-28T10:00:00.5Z", T0_MS + 500),
        ("2026-11-28T10:00:00.123Z", T0_MS + 123),
        ("2026-11-28T10:00:00.123456Z", T0_MS + 123),
        ("2026-11-28T10:00:00.999999999Z", T0_MS + 999),
        ("2026-11-28T12:00:00.250+02:00", T0_MS + 250),
        ("2026-11-28T10:00:00.000Z", T0_MS),
    ],
)
def test_parse_timestamp_fractional_seconds_truncated_to_ms(text: str, expected_ms: int) -> None:
    assert parse_timestamp(text) == expected_ms


@pytest.mark.parametrize("value", [0, 1, T0_MS, T0_MS + 1, -1_000])
def test_parse_timestamp_epoch_ms_int_passes_through(value: int) -> None:
    assert parse_timestamp(value) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-11-28T10:00:00", "needs Z or an offset"),
        ("2026-11-28T10:00:00.250", "needs Z or an offset"),
        ("2026-11-28 10:00:00", "needs Z or an offset"),
    ],
)
def test_parse_timestamp_naive_string_rejected(text: str, message: str) -> None:
    with pytest.raises(TimestampError, match=message):
        parse_timestamp(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2026-11-28",
        "2026-11-28T10:00Z",
        "10:00:00Z",
        "yesterday",
        "1795860000000",
        "2026-11-28T10:00:00+0200",
        "2026-11-28T10:00:00+02",
        "2026-11-28T10:00:00,5Z",
        "2026-W48-6T10:00:00Z",
        "2026-11-28T10:00:00Z ",
        " 2026-11-28T10:00:00Z",
        "2026-11-28T10:00:00 UTC",
    ],
)
def test_parse_timestamp_non_rfc3339_rejected(text: str) -> None:
    with pytest.raises(TimestampError, match="not an RFC 3339 date-time"):
        parse_timestamp(text)


@pytest.mark.parametrize(
    "text",
    [
        "2026-13-28T10:00:00Z",
        "2026-02-30T10:00:00Z",
        "2026-11-28T24:00:01Z",
        "2026-11-28T10:61:00Z",
    ],
)
def test_parse_timestamp_impossible_date_rejected(text: str) -> None:
    with pytest.raises(TimestampError, match="not an RFC 3339 date-time"):
        parse_timestamp(text)


@pytest.mark.parametrize("value", [True, False])
def test_parse_timestamp_bool_rejected(value: bool) -> None:
    with pytest.raises(TimestampError, match="boolean"):
        parse_timestamp(value)


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC), T0_MS),
        (datetime(2026, 11, 28, 12, 0, 0, tzinfo=timezone(timedelta(hours=2))), T0_MS),
        (datetime(2026, 11, 28, 10, 0, 0, 999, tzinfo=UTC), T0_MS),
        (datetime(2026, 11, 28, 10, 0, 0, 1_999, tzinfo=UTC), T0_MS + 1),
        (datetime(1969, 12, 31, 23, 59, 59, 999_500, tzinfo=UTC), -1),
    ],
)
def test_datetime_to_ms_floors_to_the_millisecond(when: datetime, expected: int) -> None:
    assert datetime_to_ms(when) == expected


def test_datetime_to_ms_naive_rejected() -> None:
    with pytest.raises(TimestampError, match="naive"):
        datetime_to_ms(datetime(2026, 11, 28, 10, 0, 0))


def test_ms_to_datetime_is_aware_utc() -> None:
    when = ms_to_datetime(T0_MS + 250)
    assert when == datetime(2026, 11, 28, 10, 0, 0, 250_000, tzinfo=UTC)
    assert when.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (T0_MS, "2026-11-28T10:00:00.000Z"),
        (T0_MS + 7, "2026-11-28T10:00:00.007Z"),
        (T0_MS + 59_999, "2026-11-28T10:00:59.999Z"),
        (0, "1970-01-01T00:00:00.000Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
    ],
)
def test_format_rfc3339_utc_millisecond_precision(ms: int, text: str) -> None:
    assert format_rfc3339(ms) == text


@pytest.mark.parametrize("ms", [0, T0_MS, T0_MS + 1, T0_MS + 123, T0_MS + 86_399_999])
def test_format_rfc3339_round_trips_through_parse(ms: int) -> None:
    assert parse_timestamp(format_rfc3339(ms)) == ms


@pytest.mark.parametrize(
    "text",
    ["2026-11-28T12:00:00.250+02:00", "2026-11-28T10:00:00.250Z", "2026-11-28T05:00:00.25-05:00"],
)
def test_format_rfc3339_normalises_offsets_to_z(text: str) -> None:
    assert format_rfc3339(parse_timestamp(text)) == "2026-11-28T10:00:00.250Z"


@settings(max_examples=200, deadline=None, database=None)
@given(st.integers(min_value=0, max_value=253_402_300_799_999))
def test_format_rfc3339_round_trip_property(ms: int) -> None:
    text = format_rfc3339(ms)
    assert parse_timestamp(text) == ms
    assert ms_to_datetime(ms) == datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))), MIN_MS - 3_600_000),
        (datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-1))),
         MAX_MS + 3_600_000 - 999),
    ],
)  # fmt: skip
def test_datetime_to_ms_at_the_ends_of_the_range_never_overflows(
    value: datetime, expected: int
) -> None:
    assert datetime_to_ms(value) == expected


@pytest.mark.parametrize(
    "value",
    ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", MIN_MS - 1, MAX_MS + 1, 2**63],
)
def test_parse_timestamp_outside_years_1_to_9999_rejected(value: str | int) -> None:
    with pytest.raises(TimestampError, match=r"outside 0001-01-01T00:00:00Z\.\.9999"):
        parse_timestamp(value)


@pytest.mark.parametrize("value", [MIN_MS, MAX_MS])
def test_parse_timestamp_range_ends_accepted(value: int) -> None:
    assert parse_timestamp(value) == value
    assert format_rfc3339(value) in ("0001-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1795824000000", 1_795_824_000_000),
        ("-5", -5),
        ("0" * 30, 0),
        ("0" * 40 + "1795824000000", 1_795_824_000_000),
        ("-" + "0" * 30 + "5", -5),
        ("\uff15", "\uff15"),  # fullwidth 5
        ("\u0663", "\u0663"),  # Arabic-Indic 3
        ("+5", "+5"),
        (" 5", " 5"),
        ("1_0", "1_0"),
        ("2026-11-28T00:00:00Z", "2026-11-28T00:00:00Z"),
    ],
)
def test_epoch_or_text_takes_only_ascii_digits_as_epoch_ms(text: str, expected: str | int) -> None:
    assert epoch_or_text(text) == expected


@pytest.mark.parametrize("text", ["1" * 31, "-" + "9" * 31, "7" * 5000, "0" * 9 + "1" * 31])
def test_epoch_or_text_calls_too_many_digits_out_of_range(text: str) -> None:
    """Not a date-time's error, and no ``int()`` of thousands of digits (which raises)."""
    with pytest.raises(TimestampError, match=r"^-?[0-9]{29,30}\.\.\. ms is outside 0001-01-01T"):
        epoch_or_text(text)
