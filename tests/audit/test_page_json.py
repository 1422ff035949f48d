"""A page of events from the database goes out as the API wrote it before each
event was written in one pass: the same bytes as DRF's encoder writing the
event's dict, whatever the events' texts hold, for every way a page names its
tenants (from the scope, from the filter, or read with each row).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import TextField
from django.db.models.functions import Cast
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from audit.models import AuditEvent, Category
from audit.query import AuditFilter
from auditlog.selectors import (
    OUTPUT_FIELDS,
    _event_json,
    audit_event_page_db,
    audit_row_output,
)
from core.api import JSONRenderer
from core.jsontext import JSONText
from tenants.selectors import TenantScope

# Texts an encoder must escape, or must not: quotes, backslashes, control
# characters, line and paragraph separators, non-ASCII, markup.
HOSTILE = [
    'say "hi"\\ there',
    "line\nbreak\r\ttab\x01soh\x1f\x7f",
    "sep\u2028para\u2029end",
    "é€𝄞 — ünïcode",
    "</script><script>alert(1)</script>",
    "",
]


def _render(events: list) -> bytes:
    return JSONRenderer().render({"result": events})


def _before(row: tuple) -> dict:
    """The event as the page wrote it before: ``audit_row_output``'s dict with
    the detail as its JSON text."""
    return audit_row_output((*row[:-1], JSONText(row[-1])))


_OPTIONAL_TEXT = st.none() | st.text()


@given(
    event_id=st.integers(min_value=1, max_value=2**63 - 1),
    stamp=st.datetimes(
        min_value=datetime(1970, 1, 1),
        max_value=datetime(9999, 1, 1),
        timezones=st.just(UTC),
    ),
    texts=st.tuples(st.text(), st.text(), st.text(), st.text()),
    partner=_OPTIONAL_TEXT,
    organization=_OPTIONAL_TEXT,
    detail=st.dictionaries(
        st.text(), st.text() | st.integers() | st.none(), max_size=4
    ),
)
def test_an_event_is_written_as_the_encoder_writes_its_dict(
    event_id, stamp, texts, partner, organization, detail
):
    import json

    category, type_, actor, summary = texts
    detail_text = json.dumps(detail)
    row = (event_id, stamp, category, type_, actor, summary, detail_text)
    written = _event_json(row, partner=partner, organization=organization)
    before = _before(
        (
            event_id,
            stamp,
            category,
            type_,
            actor,
            partner,
            organization,
            summary,
            detail_text,
        )
    )
    assert _render([written]) == _render([before])
    # Read as a mapping (the audit page's template), it is the same event.
    assert dict(written) == {**before, "detail": detail}


def _expected(scope: TenantScope, flt: AuditFilter) -> bytes:
    """The page's events read by the ORM, with both tenants joined, written the
    way the page wrote them before."""
    events = AuditEvent.objects.filter(
        partner=scope.partner,
        category=Category.SYSTEMAUDIT,
        timestamp__gte=flt.time_from,
        timestamp__lte=flt.time_to,
    )
    organization_id = (
        scope.organization.pk if scope.organization else flt.organization_id
    )
    if organization_id is not None:
        events = events.filter(organization_id=organization_id)
    rows = (
        events.annotate(detail_json=Cast("detail", output_field=TextField()))
        .order_by("-timestamp", "-id")
        .values_list(*OUTPUT_FIELDS[:-1], "detail_json")[: flt.limit]
    )
    return _render([_before(row) for row in rows])


@pytest.mark.django_db
def test_pages_of_hostile_events_read_as_before_for_every_way_of_naming_tenants(demo):
    acme, prod, dev = demo["acme"], demo["acme-prod"], demo["acme-dev"]
    now = timezone.now()
    events = []
    for number, text in enumerate(HOSTILE * 2):
        events.append(
            AuditEvent(
                timestamp=now - timedelta(seconds=number + 1),
                category=Category.SYSTEMAUDIT,
                type=f"email.{text}"[:64],
                actor=text or "system",
                partner=acme,
                # Partner events (no organization) among the organizations'.
                organization=(prod, dev, None)[number % 3],
                summary=text,
                detail={"recipient": text, text: [number, None, True], "n": 1.5},
            )
        )
    # Whole seconds: the timestamp is written without microseconds.
    events[0].timestamp = now.replace(microsecond=0) - timedelta(seconds=30)
    AuditEvent.objects.bulk_create(events)
    window = {
        "time_from": now - timedelta(hours=1),
        "time_to": now,
        "category": Category.SYSTEMAUDIT,
        "limit": 50,
    }
    cases = [
        # The organization's own log: both tenants from the scope.
        (TenantScope(partner=acme, organization=prod), AuditFilter(**window), False),
        # The partner's log: each event's organization read with it.
        (TenantScope(partner=acme, organization=None), AuditFilter(**window), True),
        # Narrowed to one organization, named by the filter.
        (
            TenantScope(partner=acme, organization=None),
            AuditFilter(**window, organization_id=dev.pk, organization_slug=dev.slug),
            False,
        ),
        # Narrowed by id alone: the organization is read with each event.
        (
            TenantScope(partner=acme, organization=None),
            AuditFilter(**window, organization_id=dev.pk),
            True,
        ),
    ]
    for scope, flt, joined in cases:
        with CaptureQueriesContext(connection) as queries:
            page = audit_event_page_db(scope=scope, flt=flt)
        assert page.events, (scope, flt)
        assert _render(page.events) == _expected(scope, flt), (scope, flt)
        (statement,) = [q["sql"] for q in queries.captured_queries]
        # The partner is never joined; the organization only when the page
        # may hold several organizations' events.
        assert "tenants_partner" not in statement
        assert ("tenants_organization" in statement) is joined, (scope, flt)
