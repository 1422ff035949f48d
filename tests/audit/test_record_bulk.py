"""Recording many events at once (the delivery engine's hot path): on
PostgreSQL one statement whose text does not change with the number of events,
its values sent as one binary array per column, writing exactly what Django's
own bulk INSERT writes; the columns' limits still hold."""

from __future__ import annotations

import pytest
from django.db import DataError, connection, transaction
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent, Category
from audit.services import EventData, _build, audit_events_record_bulk

pytestmark = pytest.mark.django_db

# What a tenant or a server can put in an event's detail: quotes, backslashes,
# braces and commas (an array's own syntax), line breaks, non-ASCII, nesting.
HOSTILE = {
    "reply": '550 5.7.1 "no" \\ {a,b} NULL\r\n',
    "recipient": "jörg@bücher.example",
    "steps": [{"command": "RCPT", "reply": "250 ok"}, None, 3.5, True],
    "empty": {},
    "text": "\u2028</script>\u00a0",
}


def events(count: int, **changes) -> list[EventData]:
    return [
        EventData(
            **{
                "category": Category.SYSTEMAUDIT,
                "type": "email.sent",
                "summary": f"Alert to oncall{n}@acme.example sent",
                "detail": {"email_id": n, **HOSTILE},
                **changes,
            }
        )
        for n in range(count)
    ]


def stored(ids: list[int]) -> list[tuple]:
    rows = {event.pk: event for event in AuditEvent.objects.filter(pk__in=ids)}
    return [
        (
            rows[pk].category,
            rows[pk].type,
            rows[pk].actor,
            rows[pk].partner_id,
            rows[pk].organization_id,
            rows[pk].summary,
            rows[pk].detail,
        )
        for pk in ids
    ]


def test_writes_what_djangos_bulk_insert_writes_and_returns_ids_in_order(demo):
    organization = demo["acme-prod"]
    batch = [
        *events(3, partner_id=organization.partner_id, organization_id=organization.pk),
        *events(2, partner_id=organization.partner_id),
        *events(2, category=Category.AUDIT, type="smtp.saved", actor="a" * 300),
        *events(1, summary="s" * 400),
    ]
    ids = audit_events_record_bulk(batch)
    expected = AuditEvent.objects.bulk_create([_build(event) for event in batch])
    assert len(ids) == len(batch) == len(set(ids))
    assert stored(ids) == stored([event.pk for event in expected])
    # In the order given: each id is its own event's.
    assert [row[5] for row in stored(ids)] == [e.summary[:300] for e in batch]
    assert stored(ids)[0][6] == {"email_id": 0, **HOSTILE}
    assert {row[2] for row in stored(ids)} == {"system", "a" * 254}
    # One timestamp for the batch, the time it was recorded.
    timestamps = set(
        AuditEvent.objects.filter(pk__in=ids).values_list("timestamp", flat=True)
    )
    assert len(timestamps) == 1


def test_any_number_of_events_is_one_statement_of_the_same_text():
    statements = []

    def seen(execute, sql, params, many, context):
        statements.append((sql, len(params or ())))
        return execute(sql, params, many, context)

    for count in (1, 2, 300):
        with connection.execute_wrapper(seen):
            assert len(audit_events_record_bulk(events(count))) == count
    if connection.vendor == "postgresql":
        assert [count for _, count in statements] == [8, 8, 8]
        assert len({sql for sql, _ in statements}) == 1
    assert AuditEvent.objects.filter(type="email.sent").count() == 303


def test_nothing_to_record_is_no_statement():
    with CaptureQueriesContext(connection) as queries:
        assert audit_events_record_bulk([]) == []
    assert len(queries) == 0


def test_a_value_too_long_for_its_column_is_refused_not_cut_short():
    """The arrays are typed without lengths (``varchar[]``), so the INSERT
    checks each value against its column, as a row of values would be."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite does not enforce a column's length")
    with pytest.raises(DataError), transaction.atomic():
        audit_events_record_bulk(events(2, type="t" * 65))
    assert not AuditEvent.objects.filter(type__startswith="ttt").exists()
    assert len(audit_events_record_bulk(events(2, type="t" * 64))) == 2
