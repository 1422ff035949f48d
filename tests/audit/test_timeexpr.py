"""Time expressions: now, now-<n><unit>, ISO 8601 with a zone, epoch seconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from audit.timeexpr import TimeExpressionError, parse_age, parse_time

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("now-30s", NOW - timedelta(seconds=30)),
        ("now-15m", NOW - timedelta(minutes=15)),
        ("now-1h", NOW - timedelta(hours=1)),
        ("now-7d", NOW - timedelta(days=7)),
        ("now-2w", NOW - timedelta(weeks=2)),
        ("now+1h", NOW + timedelta(hours=1)),
        (" now-1h ", NOW - timedelta(hours=1)),
        ("2026-11-25T10:00:00Z", datetime(2026, 11, 25, 10, tzinfo=UTC)),
        ("2026-11-25T11:00:00+01:00", datetime(2026, 11, 25, 10, tzinfo=UTC)),
        ("2026-11-25T10:00:00.250000Z", datetime(2026, 11, 25, 10, 0, 0, 250000, UTC)),
        ("1764064800", datetime.fromtimestamp(1764064800, tz=UTC)),
        ("1764064800.5", datetime.fromtimestamp(1764064800.5, tz=UTC)),
        ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
        ("9999-12-31T23:59:59Z", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_accepted_forms(text, expected):
    assert parse_time(text, name="filter.timefrom", now=NOW) == expected


@pytest.mark.parametrize(
    ("text", "message_part"),
    [
        ("yesterday", "is not a time"),
        ("now-1y", "is not a time"),
        ("now-1", "is not a time"),
        ("now-h", "is not a time"),
        ("now - 1h", "is not a time"),
        ("now-1H", "is not a time"),
        ("", "is not a time"),
        ("2026-11-25T10:00:00", "has no time zone"),
        ("2026-13-40T10:00:00Z", "is not a time"),
        ("-5", "is not a time"),
        ("now-999999999w", "too far"),
        # Found by an outside review: year 0 and year 10000 in UTC (were a 500).
        ("0001-01-01T00:00:00+01:00", "out of range"),
        ("9999-12-31T23:59:59-01:00", "out of range"),
    ],
)
def test_malformed_forms_name_the_parameter_and_the_accepted_forms(text, message_part):
    with pytest.raises(TimeExpressionError) as caught:
        parse_time(text, name="filter.timefrom", now=NOW)
    message = str(caught.value)
    assert message.startswith("filter.timefrom:")
    assert message_part in message
    if message_part == "is not a time":
        assert "now-<n><unit>" in message and "ISO 8601" in message


def test_ages_for_retention():
    assert parse_age("365d", name="--older-than") == timedelta(days=365)
    with pytest.raises(TimeExpressionError, match="--older-than"):
        parse_age("a year", name="--older-than")
