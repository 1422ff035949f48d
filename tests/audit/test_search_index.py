"""The free-text search stays inside the tenant's index range of its window."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from audit.models import AuditEvent, Category
from audit.query import AuditFilter
from auditlog.selectors import audit_events, text_search
from tenants.selectors import TenantScope

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="reads PostgreSQL's query plan"
    ),
]


def plan_of(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        # Few rows here: make the planner show the index it can use, not the
        # table scan that is cheapest on a nearly empty table.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_a_search_reads_the_tenants_time_range_newest_first(demo):
    scope = TenantScope(partner=demo["acme"], organization=demo["acme-prod"])
    index = "audit_org_time"
    now = timezone.now()
    flt = AuditFilter(
        time_from=now - timedelta(hours=24), time_to=now, text="night-shift", limit=50
    )
    plan = plan_of(audit_events(scope=scope, flt=flt)[:51])
    # an ordered range of the tenant's index (no sort, no other tenants' rows),
    # with the text as a filter on it
    assert f"Index Scan using {index}" in plan, plan
    assert '"timestamp" >=' in plan.split("Index Cond:", 1)[1].split("\n", 1)[0]
    assert "Sort" not in plan, plan
    assert "~~ '%NIGHT-SHIFT%'" in plan, plan


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
