"""The free-text search stays inside the tenant's index range of its window."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent, Category
from audit.query import AuditFilter
from auditlog.selectors import audit_events, text_search
from tenants.selectors import TenantScope

pytestmark = pytest.mark.django_db


def test_a_search_keeps_the_tenant_and_the_window_of_its_index_range(demo):
    # The search is a filter on the tenant's (organization, time) index range:
    # its query must keep both, whatever the planner then chooses.
    now = timezone.now()
    scope = TenantScope(partner=demo["acme"], organization=demo["acme-prod"])
    flt = AuditFilter(
        time_from=now - timedelta(hours=24), time_to=now, text="night-shift", limit=50
    )
    sql, params = audit_events(scope=scope, flt=flt)[:51].query.sql_with_params()
    where = sql.split(" WHERE ", 1)[1]
    assert '"audit_auditevent"."organization_id" = %s' in where
    assert '"audit_auditevent"."partner_id" = %s' in where
    assert '"audit_auditevent"."timestamp" >= %s' in where
    assert '"audit_auditevent"."timestamp" <= %s' in where
    assert 'ORDER BY "audit_auditevent"."timestamp" DESC' in where
    assert demo["acme-prod"].pk in params and "%NIGHT-SHIFT%" not in params
    assert "%night-shift%" in params


def test_the_search_escapes_like_wildcards(demo):
    for summary in ("100% delivered", "1000 delivered", "a_b", "axb"):
        AuditEvent.objects.create(
            category=Category.SYSTEMAUDIT,
            type="email.sent",
            partner=demo["acme"],
            summary=summary,
        )

    def found(text: str) -> list[str]:
        matches = AuditEvent.objects.filter(text_search(text))
        return list(matches.values_list("summary", flat=True))

    assert found("0% d") == ["100% delivered"]
    assert found("a_b") == ["a_b"]
