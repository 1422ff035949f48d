"""What an audit query asks and answers, shared by the database and Elasticsearch.

The filter, the page, the count cap and the keyset cursor: plain values, so that
both back ends read them without knowing each other.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DEFAULT_TIMEFROM = "now-7d"
DEFAULT_LIMIT = 10
MAX_LIMIT = 500
MAX_OFFSET = 10_000
COUNT_CAP = 10_000
# Ids are 64-bit (BigAutoField); a larger one in a cursor would fail in the query.
MAX_EVENT_ID = 2**63 - 1
# Free-text search: shorter text has no trigram to look up, longer is no word.
SEARCH_MIN = 3
SEARCH_MAX = 200
# A cursor for the page before (newer events) starts with this mark.
_NEWER = "<"


class AuditQueryError(Exception):
    """Bad query parameters: messages by parameter name (as the caller wrote it)."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class AuditFilter:
    time_from: datetime
    time_to: datetime
    # The expressions as written, for back ends that understand date math.
    time_from_text: str = DEFAULT_TIMEFROM
    time_to_text: str = "now"
    category: str | None = None
    type: str | None = None
    # A partner-wide query narrowed to one of its organizations (its
    # identifier too: a page of its events names it without reading it again).
    organization_id: int | None = None
    organization_slug: str | None = None
    offset: int = 0
    limit: int = DEFAULT_LIMIT
    cursor: tuple[datetime, int] | None = None
    # The cursor points the other way: the page of events just newer than it.
    newer: bool = False
    # Free text to find in the actor, summary, recipient or subject.
    text: str | None = None


@dataclass(frozen=True)
class AuditPage:
    count: int
    count_capped: bool
    offset: int
    limit: int
    next_cursor: str | None
    # Each event a mapping: a dict, or its JSON text (``core.jsontext``).
    events: list[Mapping[str, Any]] = field(default_factory=list)
    # The cursor of the page of newer events, if there are any.
    prev_cursor: str | None = None


def encode_cursor(timestamp: datetime, event_id: int, *, newer: bool = False) -> str:
    """A cursor for the events older than this one (``newer``: newer than it)."""
    mark = _NEWER if newer else ""
    raw = f"{mark}{timestamp.astimezone(UTC).isoformat()}|{event_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_cursor(text: str) -> tuple[datetime, int, bool]:
    """The (UTC timestamp, event id, newer) of a cursor ``encode_cursor`` made.

    Raises ``ValueError`` as ``decode_cursor`` does.
    """
    try:
        raw = _raw(text)
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise ValueError("not a cursor this API gave") from error
    newer = raw.startswith(_NEWER)
    return (*_parse(raw[len(_NEWER) :] if newer else raw), newer)


def decode_cursor(text: str) -> tuple[datetime, int]:
    """The (UTC timestamp, event id) of a cursor ``encode_cursor`` made.

    Raises ``ValueError`` for anything else, also for a hand-made one whose time
    has no zone or falls outside years 1-9999 in UTC, or whose id is no event id.
    """
    try:
        return _parse(_raw(text))
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise ValueError("not a cursor this API gave") from error


def _raw(text: str) -> str:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()


def _parse(raw: str) -> tuple[datetime, int]:
    try:
        stamp, event_id = raw.rsplit("|", 1)
        when, number = datetime.fromisoformat(stamp), int(event_id)
        if when.tzinfo is None or not 0 < number <= MAX_EVENT_ID:
            raise ValueError("not a cursor this API gave")
        return when.astimezone(UTC), number
    except (ValueError, OverflowError) as error:
        raise ValueError("not a cursor this API gave") from error
