"""Audit Logs pages of both consoles, and the CSV export of the current filter.

Export cells that a spreadsheet would run as a formula get a leading quote.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from urllib.parse import urlencode

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
from tenants.selectors import TenantScope, organization_list

RANGES = {"1h": "now-1h", "24h": "now-24h", "7d": "now-7d"}
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


def _selector_params(request: HttpRequest, *, partner_view: bool) -> dict[str, str]:
    """The page's filter form as the selector's parameters."""
    get = request.GET
    chosen = get.get("range", "1h")
    params: dict[str, str] = {"limit": str(PAGE_SIZE)}
    if chosen == "custom":
        # datetime-local inputs carry no zone; the page says they are UTC.
        for field, name in (("from", "timefrom"), ("to", "timeto")):
            if get.get(field):
                params[name] = f"{get[field]}+00:00"
    else:
        params["timefrom"] = RANGES.get(chosen, "now-1h")
    for name in ("category", "type", "cursor"):
        if get.get(name):
            params[name] = get[name]
    if partner_view and get.get("organization"):
        params["organization"] = get["organization"]
    return params


def _export_query(request: HttpRequest) -> str:
    kept = {k: v for k, v in request.GET.items() if k != "cursor" and v}
    return urlencode(kept)


def _audit_page(
    request: HttpRequest, *, scope: TenantScope, template: str
) -> HttpResponse:
    partner_view = scope.organization is None
    params = _selector_params(request, partner_view=partner_view)
    errors: dict[str, list[str]] = {}
    page = None
    try:
        flt = audit_filter_parse(params, scope=scope)
    except AuditQueryError as error:
        errors = error.errors
    else:
        page = audit_event_page(scope=scope, flt=flt)
    next_query = None
    if page is not None and page.next_cursor:
        next_query = urlencode(
            {
                **{k: v for k, v in request.GET.items() if k != "cursor"},
                "cursor": page.next_cursor,
            }
        )
    context = {
        "nav": "audit",
        "page": page,
        "events": _with_pretty_detail(page.events if page else []),
        "errors": [message for messages in errors.values() for message in messages],
        "selected": {
            "range": request.GET.get("range", "1h"),
            "from": request.GET.get("from", ""),
            "to": request.GET.get("to", ""),
            "category": request.GET.get("category", ""),
            "type": request.GET.get("type", ""),
            "organization": request.GET.get("organization", ""),
        },
        "categories": Category.values,
        "types": event_types.names(),
        "organizations": organization_list(partner=scope.partner)
        if partner_view
        else [],
        "partner_view": partner_view,
        "next_query": next_query,
        "first_page": bool(request.GET.get("cursor")),
        "export_query": _export_query(request),
        "now": timezone.now(),
    }
    return render(request, template, context)


def _with_pretty_detail(events: list[dict]) -> list[dict]:
    return [
        {
            **event,
            "when": event["timestamp"][:19].replace("T", " "),
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
    params = _selector_params(request, partner_view=scope.organization is None)
    params.pop("cursor", None)
    try:
        flt = audit_filter_parse(params, scope=scope)
    except AuditQueryError as error:
        text = " ".join(m for messages in error.errors.values() for m in messages)
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
