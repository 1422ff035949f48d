"""Audit Logs pages of both consoles, and the CSV export of the current filter.

Export cells that a spreadsheet would run as a formula get a leading quote.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import NamedTuple
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from audit.models import Category
from audit.query import AuditFilter, AuditQueryError
from audit.registry import event_types
from auditlog.selectors import (
    audit_event_page,
    audit_events_export,
    audit_filter_parse,
    audit_row_output,
)
from tenants.access import ops_page, web_page
from tenants.selectors import TenantScope, organization_list, organization_names

RANGES = {"1h": "now-1h", "24h": "now-24h", "7d": "now-7d"}
DEFAULT_RANGE = "24h"
PAGE_SIZE = 50
CSV_COLUMNS = [
    "id",
    "timestamp",
    "category",
    "type",
    "actor",
    "partner",
    "organization",
    "summary",
    "detail",
]
# The filter's parameters as the page's fields name them, for its messages.
FIELD_LABELS = {
    "timefrom": "From",
    "timeto": "To",
    "category": "Category",
    "type": "Type",
    "organization": "Organization",
    "q": "Search",
}
# Names no sentence uses otherwise: replaced wherever they stand. The others
# only where a message begins with them.
_TIME_PARAMETER = re.compile(r"\b(timefrom|timeto)\b")


class PageParams(NamedTuple):
    """The selector's parameters for the page's form, and the form's own errors."""

    params: dict[str, str]
    errors: dict[str, list[str]]


def _viewer_zone(request: HttpRequest) -> tuple[ZoneInfo, str]:
    """The zone the custom range is in: the browser's (``tz``), else UTC."""
    name = (request.GET.get("tz") or "").strip()
    if name and len(name) <= 64 and "\x00" not in name:
        try:
            return ZoneInfo(name), name
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo("UTC"), "UTC"


def _local_time(value: str, *, zone: ZoneInfo, label: str, errors) -> str | None:
    """A ``datetime-local`` value in ``zone`` as ISO 8601 with its offset."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        errors.setdefault(label, []).append(
            f"{label}: {value!r} is not a date and time; pick one, e.g. "
            "2026-11-25 10:00."
        )
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    return when.isoformat()


def _selector_params(request: HttpRequest, *, partner_view: bool) -> PageParams:
    """The page's filter form as the selector's parameters."""
    get = request.GET
    chosen = get.get("range") or DEFAULT_RANGE
    params: dict[str, str] = {"limit": str(PAGE_SIZE)}
    errors: dict[str, list[str]] = {}
    if chosen == "custom":
        zone, _ = _viewer_zone(request)
        for field, name, label in (
            ("from", "timefrom", "From"),
            ("to", "timeto", "To"),
        ):
            value = (get.get(field) or "").strip()
            if value:
                when = _local_time(value, zone=zone, label=label, errors=errors)
                if when is not None:
                    params[name] = when
    else:
        params["timefrom"] = RANGES.get(chosen, RANGES[DEFAULT_RANGE])
    for name in ("q", "category", "type", "cursor"):
        if get.get(name):
            params[name] = get[name]
    if partner_view and get.get("organization"):
        params["organization"] = get["organization"]
    return PageParams(params, errors)


def _page_messages(errors: dict[str, list[str]]) -> list[str]:
    """The selector's messages in the page's words ("From", not "timefrom")."""
    messages = []
    for key, texts in errors.items():
        if key == "cursor":
            messages.append(
                "This page link is out of date or was changed: start again from "
                "the newest events."
            )
            continue
        for text in texts:
            text = _TIME_PARAMETER.sub(lambda match: FIELD_LABELS[match[1]], text)
            if key in FIELD_LABELS and re.match(rf"{key}\b", text):
                text = FIELD_LABELS[key] + text[len(key) :]
            messages.append(text)
    return messages


def _export_query(request: HttpRequest) -> str:
    kept = {k: v for k, v in request.GET.items() if k != "cursor" and v}
    return urlencode(kept)


def _audit_page(
    request: HttpRequest, *, scope: TenantScope, template: str
) -> HttpResponse:
    partner_view = scope.organization is None
    params, errors = _selector_params(request, partner_view=partner_view)
    page = None
    if not errors:
        try:
            flt = audit_filter_parse(params, scope=scope)
        except AuditQueryError as error:
            errors = error.errors
        else:
            page = audit_event_page(scope=scope, flt=flt)
    kept = {k: v for k, v in request.GET.items() if k != "cursor"}

    def at(cursor: str | None) -> str | None:
        return urlencode({**kept, "cursor": cursor}) if cursor else None

    events = page.events if page else []
    context = {
        "nav": "audit",
        "page": page,
        "events": _for_people(events, partner_name=scope.partner.name),
        "errors": _page_messages(errors),
        "selected": {
            "q": request.GET.get("q", ""),
            "range": request.GET.get("range") or DEFAULT_RANGE,
            "from": request.GET.get("from", ""),
            "to": request.GET.get("to", ""),
            "category": request.GET.get("category", ""),
            "type": request.GET.get("type", ""),
            "organization": request.GET.get("organization", ""),
            "tz": _viewer_zone(request)[1],
        },
        "categories": Category.values,
        "types": event_types.names(),
        "organizations": organization_list(partner=scope.partner)
        if partner_view
        else [],
        "partner_view": partner_view,
        "older_query": at(page.next_cursor) if page else None,
        "newer_query": at(page.prev_cursor) if page else None,
        "first_page": bool(request.GET.get("cursor")),
        "export_query": _export_query(request),
        "now": timezone.now(),
    }
    return render(request, template, context)


def _for_people(events: list[dict], *, partner_name: str) -> list[dict]:
    """Events as the page shows them: names, not identifiers; the detail in JSON.

    Every event of a page was recorded for the viewer's partner (the selectors
    filter on it), so its name is the partner's.
    """
    names = organization_names(slugs=(event["organization"] for event in events))
    return [
        {
            **event,
            "when": event["timestamp"][:19].replace("T", " "),
            "exact_utc": event["timestamp"].replace("T", " ").replace("Z", " UTC"),
            # Dotted words may wrap after a dot, never inside a word.
            "type_parts": event["type"].split("."),
            "partner_name": partner_name if event["partner"] else "",
            "organization_name": names.get(event["organization"] or "")
            or event["organization"],
            "detail_json": json.dumps(
                {k: v for k, v in event["detail"].items() if k != "steps"},
                indent=2,
                sort_keys=True,
            ),
            "steps": event["detail"].get("steps") or [],
            "email_id": event["detail"].get("email_id"),
        }
        for event in events
    ]


# Spreadsheets run a cell that starts with one of these as a formula
# (=HYPERLINK(...), +cmd|...); a leading quote makes it text (OWASP: CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: object) -> object:
    """A cell a spreadsheet shows as text, never runs as a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return f"'{value}"
    return value


class _Echo:
    """A file-like object whose write returns the line, for streaming CSV."""

    def write(self, value: str) -> str:
        return value


def _csv_rows(flt: AuditFilter, scope: TenantScope) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for row in audit_events_export(scope=scope, flt=flt):
        event = audit_row_output(row)
        cells = [
            event["id"],
            event["timestamp"],
            event["category"],
            event["type"],
            event["actor"],
            event["partner"] or "",
            event["organization"] or "",
            event["summary"],
            json.dumps(event["detail"], sort_keys=True),
        ]
        yield writer.writerow([_csv_cell(cell) for cell in cells])


def _audit_export(request: HttpRequest, *, scope: TenantScope) -> HttpResponse:
    params, errors = _selector_params(request, partner_view=scope.organization is None)
    params.pop("cursor", None)
    try:
        if errors:
            raise AuditQueryError(errors)
        flt = audit_filter_parse(params, scope=scope)
    except AuditQueryError as error:
        text = " ".join(_page_messages(error.errors))
        return HttpResponse(text, status=400, content_type="text/plain")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(_csv_rows(flt, scope), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="audit-log-{stamp}.csv"'
    return response


@ops_page
def ops_audit_logs(request: HttpRequest) -> HttpResponse:
    return _audit_page(request, scope=request.scope, template="ops/audit_logs.html")


@web_page
def web_audit_logs(request: HttpRequest) -> HttpResponse:
    return _audit_page(request, scope=request.scope, template="console/audit_logs.html")


@ops_page
def ops_audit_export(request: HttpRequest) -> HttpResponse:
    return _audit_export(request, scope=request.scope)


@web_page
def web_audit_export(request: HttpRequest) -> HttpResponse:
    return _audit_export(request, scope=request.scope)
