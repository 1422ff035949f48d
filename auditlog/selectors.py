"""Reads of the audit log: filters, scoped queries, pages and exports.

Queries lead with the tenant and category (equality) and end with time, like the
indexes, so a page is one index range read in order. The count is capped rather
than counting millions of rows; deep pages use a keyset cursor.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet, TextField
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast

from audit.index import search_enabled
from audit.models import AuditEvent, Category
from audit.query import (
    COUNT_CAP,
    DEFAULT_LIMIT,
    DEFAULT_TIMEFROM,
    MAX_LIMIT,
    MAX_OFFSET,
    SEARCH_MAX,
    SEARCH_MIN,
    AuditFilter,
    AuditPage,
    AuditQueryError,
    decode_page_cursor,
    encode_cursor,
)
from audit.timeexpr import TimeExpressionError, parse_time
from auditlog import search
from core.jsontext import JSONText
from core.prepared import PreparedQuery
from core.text import is_whole_number
from tenants.models import Organization
from tenants.selectors import TenantScope

# ``Category.values`` builds its list at every read.
CATEGORIES = frozenset(Category.values)

PARAMETERS = (
    "timefrom",
    "timeto",
    "category",
    "type",
    "offset",
    "limit",
    "cursor",
    "q",
)


def _int(value: str, *, name: str, low: int, high: int, errors, hint: str) -> int:
    if not is_whole_number(value) or not low <= int(value) <= high:
        errors.setdefault(name, []).append(
            f"{name} must be a whole number from {low} to {high}{hint}."
        )
        return low
    return int(value)


def audit_filter_parse(
    params: Mapping[str, str],
    *,
    prefix: str = "",
    scope: TenantScope,
    now: datetime | None = None,
) -> AuditFilter:
    """Validate query parameters (``prefix``: ``filter.`` for the org-level API).

    Raises ``AuditQueryError`` naming each bad parameter, also unknown ones.
    """
    now = now or datetime.now(UTC)
    # Each parameter's last value, read once (a QueryDict's lookups are slow).
    params = {key: params.get(key) for key in params}
    allowed = [f"{prefix}{name}" for name in PARAMETERS]
    if scope.organization is None:
        allowed.append(f"{prefix}organization")
    errors: dict[str, list[str]] = {}
    for key in params:
        if key and key not in allowed:
            errors.setdefault(key, []).append(
                f"Unknown parameter. Allowed: {', '.join(allowed)}."
            )
        elif "\x00" in (params.get(key) or ""):
            # Databases refuse NUL in text; say so instead of failing.
            errors.setdefault(key, []).append(f"{key} must not contain NUL characters.")

    def get(name: str) -> str:
        value = (params.get(f"{prefix}{name}") or "").strip()
        return "" if "\x00" in value else value

    def when(name: str, default: str) -> tuple[datetime, str]:
        text = get(name) or default
        try:
            return parse_time(text, name=f"{prefix}{name}", now=now), text
        except TimeExpressionError as error:
            errors.setdefault(f"{prefix}{name}", []).append(str(error))
            return now, text

    time_from, from_text = when("timefrom", DEFAULT_TIMEFROM)
    time_to, to_text = when("timeto", "now")
    if not errors and time_from > time_to:
        errors.setdefault(f"{prefix}timefrom", []).append(
            f"{prefix}timefrom must not be after {prefix}timeto."
        )
    category = get("category").upper() or None
    if category is not None and category not in CATEGORIES:
        errors.setdefault(f"{prefix}category", []).append(
            f"{prefix}category must be one of {', '.join(Category.values)}."
        )
    event_type = get("type") or None
    if event_type is not None and len(event_type) > 64:
        errors.setdefault(f"{prefix}type", []).append(
            f"{prefix}type must be at most 64 characters, e.g. email.sent."
        )
    limit = _int(
        get("limit") or str(DEFAULT_LIMIT),
        name=f"{prefix}limit",
        low=1,
        high=MAX_LIMIT,
        errors=errors,
        hint="",
    )
    offset = _int(
        get("offset") or "0",
        name=f"{prefix}offset",
        low=0,
        high=MAX_OFFSET,
        errors=errors,
        hint=f"; for deeper pages follow next_cursor with {prefix}cursor",
    )
    cursor, newer = None, False
    if get("cursor"):
        try:
            *cursor, newer = decode_page_cursor(get("cursor"))
            cursor = tuple(cursor)
        except ValueError:
            errors.setdefault(f"{prefix}cursor", []).append(
                f"{prefix}cursor is not a cursor this API gave: pass next_cursor "
                "from a previous answer unchanged."
            )
        if offset:
            errors.setdefault(f"{prefix}offset", []).append(
                f"Use {prefix}offset or {prefix}cursor, not both."
            )
    text = " ".join(get("q").split()) or None
    if text is not None and not SEARCH_MIN <= len(text) <= SEARCH_MAX:
        errors.setdefault(f"{prefix}q", []).append(
            f"{prefix}q: search for {SEARCH_MIN} to {SEARCH_MAX} characters, e.g. "
            "part of a recipient's address or a subject."
        )
    organization = None
    if get("organization"):
        wanted = get("organization")
        candidates = Organization.objects.filter(partner=scope.partner)
        organization = (
            candidates.filter(pk=int(wanted)).first()
            if is_whole_number(wanted)
            else candidates.filter(slug=wanted).first()
        )
        if organization is None:
            errors.setdefault(f"{prefix}organization", []).append(
                f"{prefix}organization: no organization {wanted!r} of yours; give "
                "its identifier (e.g. acme-prod) or id."
            )
    if errors:
        raise AuditQueryError(errors)
    return AuditFilter(
        time_from=time_from,
        time_to=time_to,
        time_from_text=from_text,
        time_to_text=to_text,
        category=category,
        type=event_type,
        organization_id=organization.pk if organization is not None else None,
        organization_slug=organization.slug if organization is not None else None,
        offset=offset,
        limit=limit,
        cursor=cursor,
        newer=newer,
        text=text,
    )


def audit_events(*, scope: TenantScope, flt: AuditFilter) -> QuerySet[AuditEvent]:
    """The scope's events in the filter's window, newest first (no paging).

    Every query filters on the partner recorded on the event when it was written:
    an organization moved to another partner leaves its history with the old
    one, and its own log shows what happened since it belongs to this partner.
    """
    return _window(
        partner_id=scope.partner.pk,
        organization_id=_organization_id(scope, flt),
        category=flt.category,
        type_=flt.type,
        time_from=flt.time_from,
        time_to=flt.time_to,
        text=flt.text,
    )


def _organization_id(scope: TenantScope, flt: AuditFilter) -> int | None:
    return (
        scope.organization.pk if scope.organization is not None else flt.organization_id
    )


def _window(
    *,
    partner_id: int,
    organization_id: int | None,
    category: str | None,
    type_: str | None,
    time_from: datetime,
    time_to: datetime,
    text: str | None,
) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.filter(partner_id=partner_id)
    if organization_id is not None:
        events = events.filter(organization_id=organization_id)
    if category:
        events = events.filter(category=category)
    events = events.filter(timestamp__gte=time_from, timestamp__lte=time_to)
    if type_:
        events = events.filter(type=type_)
    if text:
        events = events.filter(text_search(text))
    return events.order_by("-timestamp", "-id")


def text_search(text: str) -> Q:
    """Events whose actor, summary, recipient or email subject contain ``text``
    (any letter case; ``%`` and ``_`` are text, not wildcards).

    A filter on the rows of the window: callers keep the tenant and time
    conditions, so PostgreSQL reads the tenant's (partner or organization, time)
    index range newest first and stops at the page's last match. A trigram
    index would find rare words faster but makes every event insert, the
    delivery engine's hot path, several times slower (docs/operations.md).
    """
    return (
        Q(actor__icontains=text)
        | Q(summary__icontains=text)
        | Q(detail__recipient__icontains=text)
        | Q(detail__subject__icontains=text)
    )


# Read as plain rows (no model instances): a page is on the hot path.
OUTPUT_FIELDS = (
    "id",
    "timestamp",
    "category",
    "type",
    "actor",
    "partner__slug",
    "organization__slug",
    "summary",
    "detail",
)


# A page's columns: ``OUTPUT_FIELDS`` without the tenants' identifiers, which
# the page's scope gives (no join to read them, nor to plan), and with the
# detail as its JSON text; the organization's identifier follows only where the
# page may hold several organizations' events.
PAGE_FIELDS = ("id", "timestamp", "category", "type", "actor", "summary", "detail_json")


def _iso(stamp: datetime) -> str:
    return stamp.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _json_string(value: str | None) -> str:
    """A string as the API's encoder writes it (``ensure_ascii=False``), or null."""
    return "null" if value is None else encode_basestring(value)


def _event_json(row: tuple, *, partner: str, organization: str | None) -> JSONText:
    """A ``PAGE_FIELDS`` row as the JSON text of ``audit_row_output``'s event,
    character for character as the API's encoder writes that dict (compact
    separators, not ASCII-only; the detail as PostgreSQL gave it): written in
    one pass instead of a dict per event that the encoder walks again."""
    event_id, stamp, category, type_, actor, summary, detail = row[:7]
    return JSONText(
        f'{{"id":{event_id:d},"timestamp":"{_iso(stamp)}",'
        f'"category":{_json_string(category)},"type":{_json_string(type_)},'
        f'"actor":{_json_string(actor)},"partner":{_json_string(partner)},'
        f'"organization":{_json_string(organization)},'
        f'"summary":{_json_string(summary)},"detail":{detail}}}'
    )


def audit_row_output(row: tuple) -> dict[str, Any]:
    """A row of ``OUTPUT_FIELDS`` as the API shows an event."""
    event_id, stamp, category, type_, actor, partner, organization, summary, detail = (
        row
    )
    return {
        "id": event_id,
        "timestamp": _iso(stamp),
        "category": category,
        "type": type_,
        "actor": actor,
        "partner": partner,
        "organization": organization,
        "summary": summary,
        "detail": detail,
    }


# Windows found to hold more than COUNT_CAP events, by what defines them, with
# when that was found: not counted again (up to COUNT_CAP index entries) while
# that is recent. Per process; a window only leaves the cap by sliding or by
# retention, so the answer may say "capped" that much longer.
_over_the_cap: dict[tuple, float] = {}
_OVER_THE_CAP_MAX_ENTRIES = 10_000


def _window_key(scope: TenantScope, flt: AuditFilter) -> tuple:
    return (
        scope.partner.pk,
        scope.organization.pk if scope.organization is not None else None,
        flt.organization_id,
        flt.category,
        flt.type,
        flt.time_from_text,
        flt.time_to_text,
        flt.text,
        COUNT_CAP,
    )


def _known_over_the_cap(key: tuple) -> bool:
    found = _over_the_cap.get(key)
    if found is None:
        return False
    if time.monotonic() - found > settings.AUDIT_COUNT_CAPPED_SECONDS:
        _over_the_cap.pop(key, None)
        return False
    return True


def _remember_over_the_cap(key: tuple) -> None:
    if len(_over_the_cap) >= _OVER_THE_CAP_MAX_ENTRIES:
        _over_the_cap.clear()
    _over_the_cap[key] = time.monotonic()


def audit_count_memory_clear() -> None:
    """Forget which windows were over the cap (tests, retention)."""
    _over_the_cap.clear()


def _capped_count(window: QuerySet[AuditEvent]) -> RawSQL:
    """The window's count up to COUNT_CAP + 1, as a scalar subquery (PostgreSQL
    computes it once, in the same round trip as the page)."""
    capped = window.order_by().values("pk")[: COUNT_CAP + 1]
    sql, params = capped.query.sql_with_params()
    # Django's own SQL for the window, its values as parameters.
    return RawSQL(f"SELECT COUNT(*) FROM ({sql}) AS capped", params)  # noqa: S608, S611


def _page_rows(
    window: QuerySet[AuditEvent],
    *,
    organization_slugs: bool,
    counted: bool,
    cursor: tuple[datetime, int] | None,
    newer: bool,
    start: int,
    limit: int,
) -> QuerySet:
    """The ``PAGE_FIELDS`` rows of a page of ``window`` (``limit + 1``, to tell
    whether more follow), then each event's organization identifier when
    ``organization_slugs``, then the window's capped count when ``counted``."""
    page = window.annotate(detail_json=Cast("detail", output_field=TextField()))
    fields: tuple[str, ...] = PAGE_FIELDS
    if organization_slugs:
        fields = (*fields, "organization__slug")
    if counted:
        page = page.annotate(window_count=_capped_count(window))
        fields = (*fields, "window_count")
    if cursor is not None and newer:
        stamp, event_id = cursor
        # The mirror image: the events just newer than the cursor, read
        # oldest first (the same index, backwards), then shown newest first.
        page = (
            page.filter(timestamp__gte=stamp)
            .exclude(timestamp=stamp, id__lte=event_id)
            .order_by("timestamp", "id")
        )
    elif cursor is not None:
        stamp, event_id = cursor
        # "<= stamp" is an index range; the exclusion only drops equal stamps.
        page = page.filter(timestamp__lte=stamp).exclude(
            timestamp=stamp, id__gte=event_id
        )
    return page.values_list(*fields)[start : start + limit + 1]


# The page queries without free text, compiled once per shape (which filters,
# cursor direction, counted or not, offset and limit): a page is on the hot
# path, and compiling its SQL cost more than PostgreSQL running it.
_prepared_pages: dict[tuple, PreparedQuery] = {}
_PREPARED_PAGES_MAX = 512


def _prepared_page(shape: tuple) -> PreparedQuery:
    prepared = _prepared_pages.get(shape)
    if prepared is not None:
        return prepared
    with_organization, with_category, with_type, cursor, newer, counted = shape[:6]
    organization_slugs, start, limit = shape[6:]
    kinds: list[type] = [int]
    kinds += [int] if with_organization else []
    kinds += [str] if with_category else []
    kinds += [str] if with_type else []
    kinds += [datetime, datetime]
    kinds += [datetime, int] if cursor else []

    def build(*arguments) -> QuerySet:
        given = list(arguments)
        partner_id = given.pop(0)
        organization_id = given.pop(0) if with_organization else None
        category = given.pop(0) if with_category else None
        type_ = given.pop(0) if with_type else None
        time_from, time_to = given.pop(0), given.pop(0)
        window = _window(
            partner_id=partner_id,
            organization_id=organization_id,
            category=category,
            type_=type_,
            time_from=time_from,
            time_to=time_to,
            text=None,
        )
        return _page_rows(
            window,
            organization_slugs=organization_slugs,
            counted=counted,
            cursor=tuple(given) if cursor else None,
            newer=newer,
            start=start,
            limit=limit,
        )

    if len(_prepared_pages) >= _PREPARED_PAGES_MAX:
        _prepared_pages.clear()
    prepared = _prepared_pages[shape] = PreparedQuery(build, kinds=tuple(kinds))
    return prepared


def _read_page(
    *,
    scope: TenantScope,
    flt: AuditFilter,
    organization_slugs: bool,
    counted: bool,
    start: int,
) -> list[tuple]:
    """The rows of the page ``_page_rows`` describes for this scope and filter."""
    if flt.text:
        window = audit_events(scope=scope, flt=flt)
        return list(
            _page_rows(
                window,
                organization_slugs=organization_slugs,
                counted=counted,
                cursor=flt.cursor,
                newer=flt.newer,
                start=start,
                limit=flt.limit,
            )
        )
    organization_id = _organization_id(scope, flt)
    shape = (
        organization_id is not None,
        bool(flt.category),
        bool(flt.type),
        flt.cursor is not None,
        flt.newer,
        counted,
        organization_slugs,
        start,
        flt.limit,
    )
    arguments: list[Any] = [scope.partner.pk]
    arguments += [organization_id] if organization_id is not None else []
    arguments += [flt.category] if flt.category else []
    arguments += [flt.type] if flt.type else []
    arguments += [flt.time_from, flt.time_to]
    arguments += list(flt.cursor) if flt.cursor is not None else []
    return _prepared_page(shape).run(*arguments)


def audit_event_page_db(*, scope: TenantScope, flt: AuditFilter) -> AuditPage:
    """One page from the database: ``limit`` events and a capped count, in one
    query.

    The count comes free when the page holds an event of the window; a window
    recently found over the cap is not counted again (see ``_over_the_cap``).
    """
    key = _window_key(scope, flt)
    over_the_cap = _known_over_the_cap(key)
    # The organization every event of the page belongs to, when there is one.
    organization = (
        scope.organization.slug
        if scope.organization is not None
        else flt.organization_slug
        if flt.organization_id is not None
        else None
    )
    read = {
        "scope": scope,
        "flt": flt,
        "organization_slugs": organization is None,
        "counted": not over_the_cap,
    }
    # What ``_page`` writes in each event for the tenants.
    tenants = {"partner": scope.partner.slug, "organization": organization}
    if flt.cursor is not None and flt.newer:
        rows = _read_page(**read, start=0)
        newer_left = len(rows) > flt.limit
        rows = rows[: flt.limit][::-1]
        count = _counted(
            rows, over_the_cap=over_the_cap, scope=scope, flt=flt, none_left=False
        )
        return _page(flt, count, rows, older=bool(rows), newer=newer_left, **tenants)
    start = 0 if flt.cursor is not None else flt.offset
    rows = _read_page(**read, start=start)
    more = len(rows) > flt.limit
    rows = rows[: flt.limit]
    count = _counted(
        rows,
        over_the_cap=over_the_cap,
        scope=scope,
        flt=flt,
        none_left=flt.cursor is None and start == 0,
    )
    # Past the first page there are newer events: at least those skipped.
    return _page(flt, count, rows, older=more, newer=flt.cursor is not None, **tenants)


def _counted(
    rows: list[tuple],
    *,
    over_the_cap: bool,
    scope: TenantScope,
    flt: AuditFilter,
    none_left: bool,
) -> int:
    """The window's capped count: from the rows' last column when there are
    rows; 0 for an empty first page (``none_left``); counted on its own past
    the window's end, where the page cannot tell."""
    if over_the_cap:
        count = COUNT_CAP + 1
    elif rows:
        count = rows[0][-1]
    elif none_left:
        count = 0
    else:
        count = audit_events(scope=scope, flt=flt)[: COUNT_CAP + 1].count()
    if count > COUNT_CAP:
        _remember_over_the_cap(_window_key(scope, flt))
    return count


def _page(
    flt: AuditFilter,
    count: int,
    rows: list[tuple],
    *,
    older: bool,
    newer: bool,
    partner: str,
    organization: str | None,
) -> AuditPage:
    """A page of ``rows`` (newest first) with cursors to the pages around it:
    every event is ``partner``'s, and ``organization``'s when it is given;
    otherwise each row names its organization after ``PAGE_FIELDS``."""
    next_cursor = encode_cursor(rows[-1][1], rows[-1][0]) if older and rows else None
    prev_cursor = (
        encode_cursor(rows[0][1], rows[0][0], newer=True) if newer and rows else None
    )
    return AuditPage(
        count=min(count, COUNT_CAP),
        count_capped=count > COUNT_CAP,
        offset=flt.offset,
        limit=flt.limit,
        next_cursor=next_cursor,
        events=[
            _event_json(
                row,
                partner=partner,
                organization=row[7] if organization is None else organization,
            )
            for row in rows
        ],
        prev_cursor=prev_cursor,
    )


def audit_page_output(page: AuditPage) -> dict[str, Any]:
    """The documented answer shape (no deep copies: each event is already what
    the API writes, a plain dict or, read from the database, its JSON text)."""
    return {
        "count": page.count,
        "count_capped": page.count_capped,
        "offset": page.offset,
        "limit": page.limit,
        "next_cursor": page.next_cursor,
        "prev_cursor": page.prev_cursor,
        "result": page.events,
    }


def audit_event_page(*, scope: TenantScope, flt: AuditFilter) -> AuditPage:
    """One page of events: Elasticsearch for partner-wide queries when configured.

    A free-text search reads the database: the Elasticsearch documents do not
    index the recipient and subject it looks in.
    """
    if scope.organization is None and search_enabled() and not flt.text:
        page = search.audit_event_page_search(scope=scope, flt=flt)
        if page is not None:
            return page
    return audit_event_page_db(scope=scope, flt=flt)


def audit_events_export(*, scope: TenantScope, flt: AuditFilter) -> Iterator[tuple]:
    """Every event of the window as ``OUTPUT_FIELDS`` rows, streamed in chunks."""
    return (
        audit_events(scope=scope, flt=flt)
        .values_list(*OUTPUT_FIELDS)
        .iterator(chunk_size=2000)
    )
