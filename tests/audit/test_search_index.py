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
    # given: three days of events of three organizations, with their statistics
    now = timezone.now()
    organizations = [demo["acme-prod"], demo["acme-dev"], demo["globex-main"]]
    AuditEvent.objects.bulk_create(
        AuditEvent(
            timestamp=now - timedelta(seconds=n * 30),
            category=Category.SYSTEMAUDIT,
            type="email.sent",
            partner=organizations[n % 3].partner,
            organization=organizations[n % 3],
            summary=f"Alert notification to user{n}@acme.example sent",
        )
        for n in range(9000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE audit_auditevent")
    scope = TenantScope(partner=demo["acme"], organization=demo["acme-prod"])
    index = "audit_org_time"
    flt = AuditFilter(
        time_from=now - timedelta(hours=24), time_to=now, text="night-shift", limit=50
    )
    plan = plan_of(audit_events(scope=scope, flt=flt)[:51])
    # a range of the tenant's index (no other tenants' rows, nothing outside
    # the window), with the text as a filter on it
    condition = plan.split(f"Index Scan on {index}", 1)
    if len(condition) == 1:
        condition = plan.split(f"Index Scan Backward using {index}", 1)
    if len(condition) == 1:
        condition = plan.split(f"Index Scan using {index}", 1)
    assert len(condition) == 2, plan
    index_condition = condition[1].split("Index Cond:", 1)[1].split("\n", 1)[0]
    assert "organization_id =" in index_condition, plan
    assert '"timestamp" >=' in index_condition, plan
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
