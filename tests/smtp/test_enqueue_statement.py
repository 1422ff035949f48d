"""Writing emails on PostgreSQL: a batch is one statement whose text does not
change with the batch's size, its values sent as one array per column; a single
email is one row of values. The columns' own limits hold either way."""

from __future__ import annotations

import pytest
from django.db import DataError, connection, transaction

from audit.models import AuditEvent
from smtp.models import Email, EmailKind
from smtp.outbox.enqueue import NewEmail, emails_enqueue

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="the PostgreSQL statement"
    ),
]


def batch(organization, count: int, **changes) -> list[NewEmail]:
    return [
        NewEmail(
            **{
                "kind": EmailKind.ALERT,
                "recipient": f"oncall{n}@acme.example",
                "subject": f"Disk almost full on node {n}",
                "body": f"Node {n} is at 91%.",
                "partner": organization.partner,
                "organization": organization,
                "html_body": f"<p>Node {n}</p>" if n % 2 else "",
                **changes,
            }
        )
        for n in range(count)
    ]


def test_batches_of_any_size_are_one_statement_of_the_same_text(demo):
    """A single email is one row of values; batches of any size share one
    statement whose values are arrays."""
    organization = demo["acme-prod"]
    statements = []

    def seen(execute, sql, params, many, context):
        if "INSERT" in sql:
            statements.append((sql, len(params)))
        return execute(sql, params, many, context)

    for size in (2, 3, 250):
        with connection.execute_wrapper(seen):
            emails = emails_enqueue(batch(organization, size))
        assert len(emails) == size
    assert [count for _, count in statements] == [38, 38, 38]
    # The same text whatever the size (the values are in arrays, not the text).
    texts = {sql for sql, _ in statements}
    assert len(texts) == 1
    assert len(texts.pop()) < 4096


def test_each_email_is_written_with_its_own_values_and_event(demo):
    organization = demo["acme-prod"]
    emails = emails_enqueue(batch(organization, 40))
    stored = {e.pk: e for e in Email.objects.filter(pk__in=[e.pk for e in emails])}
    assert len(stored) == 40
    for number, email in enumerate(emails):
        row = stored[email.pk]
        assert row.recipient == f"oncall{number}@acme.example"
        assert row.subject == f"Disk almost full on node {number}"
        assert row.body == f"Node {number} is at 91%."
        assert row.html_body == (f"<p>Node {number}</p>" if number % 2 else None)
        assert row.message_id == email.message_id
        assert (row.partner_id, row.organization_id) == (
            organization.partner_id,
            organization.pk,
        )
    events = AuditEvent.objects.filter(type="email.queued", organization=organization)
    by_email = {event.detail["email_id"]: event for event in events}
    for email in emails:
        event = by_email[email.pk]
        assert event.detail["recipient"] == email.recipient
        assert event.detail["message_id"] == email.message_id
        assert event.summary == f"Alert notification to {email.recipient} queued"


@pytest.mark.parametrize("size", [1, 5])
def test_a_value_too_long_for_its_column_is_refused_not_cut(demo, size):
    """The arrays are typed without lengths: the INSERT checks them, as it
    checks a plain VALUES list, and a cast never shortens a value."""
    organization = demo["acme-prod"]
    before = (Email.objects.count(), AuditEvent.objects.count())
    emails = batch(organization, size)
    emails[-1] = NewEmail(**{**emails[-1].__dict__, "subject": "s" * 256})
    with pytest.raises(DataError), transaction.atomic():
        emails_enqueue(emails)
    assert (Email.objects.count(), AuditEvent.objects.count()) == before
