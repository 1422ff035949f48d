"""Fixtures of the audit tests: events in bulk, with chosen timestamps."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent, Category


@pytest.fixture
def make_events():
    """``make_events(n, partner, organization, ...)``: n events, one a minute back."""

    def make(
        count: int,
        *,
        partner,
        organization=None,
        category=Category.SYSTEMAUDIT,
        type="email.sent",
        start=None,
        step=timedelta(minutes=1),
        same_time_every: int = 0,
    ) -> list[AuditEvent]:
        start = start or timezone.now() - timedelta(seconds=5)
        events = []
        for number in range(count):
            # Groups of equal timestamps test the tie-breaking by id.
            slot = number // same_time_every if same_time_every else number
            events.append(
                AuditEvent(
                    timestamp=start - slot * step,
                    category=category,
                    type=type,
                    actor="system",
                    partner=partner,
                    organization=organization,
                    summary=f"event {number}",
                    detail={"number": number},
                )
            )
        return AuditEvent.objects.bulk_create(events)

    return make


@pytest.fixture(autouse=True)
def _count_memory():
    """Each test counts its own windows (the memory of capped ones is per process)."""
    from auditlog.selectors import audit_count_memory_clear

    audit_count_memory_clear()
    yield
    audit_count_memory_clear()
