"""Time expressions of the audit APIs, as in Elasticsearch date math (a subset).

Accepted: ``now``; ``now-<n><unit>`` or ``now+<n><unit>`` with units ``s m h d w``;
ISO 8601 with a time zone (``2026-11-25T10:00:00Z``, ``...+01:00``); epoch
seconds (``1764064800``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

ACCEPTED_FORMS = (
    "now, now-<n><unit> (units s, m, h, d, w; e.g. now-1h, now-7d), ISO 8601 with a "
    "time zone (e.g. 2026-11-25T10:00:00Z) or epoch seconds"
)
_RELATIVE = re.compile(r"^now(?:(?P<sign>[-+])(?P<amount>\d{1,9})(?P<unit>[smhdw]))?$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_EPOCH = re.compile(r"^\d{1,12}(?:\.\d{1,6})?$")


class TimeExpressionError(ValueError):
    """A time expression that is none of the accepted forms."""


def parse_time(value: str, *, name: str, now: datetime | None = None) -> datetime:
    """The instant ``value`` stands for; ``name`` is the parameter, for the message."""
    now = now or datetime.now(UTC)
    text = (value or "").strip()
    match = _RELATIVE.match(text)
    if match:
        if match["sign"] is None:
            return now
        try:
            delta = timedelta(**{_UNITS[match["unit"]]: int(match["amount"])})
            return now - delta if match["sign"] == "-" else now + delta
        except OverflowError as error:
            raise TimeExpressionError(
                f"{name}: {text!r} is too far from now."
            ) from error
    if _EPOCH.match(text):
        try:
            return datetime.fromtimestamp(float(text), tz=UTC)
        except (OverflowError, ValueError, OSError) as error:
            raise TimeExpressionError(f"{name}: {text!r} is out of range.") from error
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is not None:
        if parsed.tzinfo is None:
            raise TimeExpressionError(
                f"{name}: {text!r} has no time zone; add one, e.g. Z or +01:00."
            )
        try:
            return parsed.astimezone(UTC)
        except OverflowError as error:
            # 0001-01-01T00:00:00+01:00 is year 0 in UTC: Python has no such year.
            raise TimeExpressionError(
                f"{name}: {text!r} is out of range; use a time from year 1 to 9999 "
                "in UTC."
            ) from error
    raise TimeExpressionError(f"{name}: {text!r} is not a time. Use {ACCEPTED_FORMS}.")


def parse_age(value: str, *, name: str) -> timedelta:
    """An age like ``365d`` or ``12w`` (for retention)."""
    match = re.match(r"^(?P<amount>\d{1,9})(?P<unit>[smhdw])$", (value or "").strip())
    if not match:
        raise TimeExpressionError(
            f"{name}: {value!r} is not an age; use <n><unit> with units s, m, h, d, "
            "w, e.g. 365d."
        )
    return timedelta(**{_UNITS[match["unit"]]: int(match["amount"])})
