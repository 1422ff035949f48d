"""The documented audit log APIs.

- ``GET /event/v1/auditlog?&filter.timefrom=now-1h&filter.limit=10&...``: the
  caller's organization (organization users) or partner (partner users).
- ``GET /opsauditlogs/?timefrom=now-7d&category=SYSTEMAUDIT``: partner users, their
  partner and all its organizations.

Both take ``q`` (free-text search) and page with ``cursor`` either way:
``next_cursor`` for older events, ``prev_cursor`` for newer ones.
"""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.query import (
    DEFAULT_LIMIT,
    DEFAULT_TIMEFROM,
    MAX_LIMIT,
    SEARCH_MAX,
    SEARCH_MIN,
    AuditQueryError,
)
from auditlog.selectors import audit_event_page, audit_filter_parse, audit_page_output
from tenants.access import api_tenant_scope


class AuditEventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    timestamp = serializers.DateTimeField()
    category = serializers.ChoiceField(choices=["SYSTEMAUDIT", "AUDIT"])
    type = serializers.CharField()
    actor = serializers.CharField()
    partner = serializers.CharField(allow_null=True)
    organization = serializers.CharField(allow_null=True)
    summary = serializers.CharField()
    detail = serializers.DictField()


class AuditPageSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Matches in the window (capped).")
    count_capped = serializers.BooleanField(
        help_text="True when there are more matches than the count says."
    )
    offset = serializers.IntegerField()
    limit = serializers.IntegerField()
    next_cursor = serializers.CharField(
        allow_null=True, help_text="Pass as cursor for the page of older events."
    )
    prev_cursor = serializers.CharField(
        allow_null=True,
        help_text="Pass as cursor for the page of newer events (null on the newest).",
    )
    result = AuditEventSerializer(many=True)


def _parameters(prefix: str, *, organization: bool) -> list[OpenApiParameter]:
    described = [
        (
            "timefrom",
            f"now, now-<n><s|m|h|d|w>, ISO 8601 or epoch; default {DEFAULT_TIMEFROM}",
        ),
        ("timeto", "Same forms; default now"),
        ("category", "SYSTEMAUDIT or AUDIT"),
        ("type", "e.g. email.sent"),
        ("offset", "0-10000; default 0"),
        ("limit", f"1-{MAX_LIMIT}; default {DEFAULT_LIMIT}"),
        (
            "cursor",
            "next_cursor (older events) or prev_cursor (newer events) of a page "
            "(keyset paging)",
        ),
        (
            "q",
            f"Free text ({SEARCH_MIN}-{SEARCH_MAX} characters, any letter case) "
            "found in the actor, summary, recipient or email subject",
        ),
    ]
    if organization:
        described.append(("organization", "Narrow to one organization (identifier)"))
    return [
        OpenApiParameter(f"{prefix}{name}", str, description=text)
        for name, text in described
    ]


def _page(request, *, prefix: str) -> Response:
    scope = api_tenant_scope(request)
    try:
        flt = audit_filter_parse(request.query_params, prefix=prefix, scope=scope)
    except AuditQueryError as error:
        raise serializers.ValidationError(error.errors) from error
    return Response(audit_page_output(audit_event_page(scope=scope, flt=flt)))


class OrganizationAuditLogApi(APIView):
    """Audit events of the caller's organization (partner users: their partner)."""

    @extend_schema(
        operation_id="auditlog_list",
        parameters=_parameters("filter.", organization=False),
        responses={200: AuditPageSerializer},
    )
    def get(self, request):
        return _page(request, prefix="filter.")


class PartnerAuditLogApi(APIView):
    """Audit events of the caller's partner and all its organizations."""

    @extend_schema(
        operation_id="opsauditlogs_list",
        parameters=_parameters("", organization=True),
        responses={200: AuditPageSerializer},
    )
    def get(self, request):
        if request.user.is_authenticated and request.user.console != "ops":
            raise Http404("The partner audit log is for partner users.")
        return _page(request, prefix="")
