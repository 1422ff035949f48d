"""Queueing a system email: the row and its event in the caller's transaction,
the id handed to the broker after commit, without the caller waiting for it."""

from __future__ import annotations

import json
import os

import pytest
from django.db import transaction

from audit.models import AuditEvent
from smtp.models import Email, EmailKind
from smtp.outbox.publish import emails_handed_over
from smtp.services import send_system_email

pytestmark = pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="reads the broker's queue in Redis"
)


def queued_tasks(broker, queue: str) -> list[tuple[str, dict]]:
    """The tasks waiting in ``queue``: their names and keyword arguments."""
    import base64

    tasks = []
    for raw in broker.lrange(queue, 0, -1):
        message = json.loads(raw)
        body = json.loads(base64.b64decode(message["body"]))
        tasks.append((message["headers"]["task"], body[1]))
    return tasks


def queued_turns(broker, queue: str) -> list[tuple[int, int]]:
    """The tenants (partner, organization) of the bulk turns waiting in ``queue``."""
    return [
        (kwargs["partner_id"], kwargs["organization_id"])
        for name, kwargs in queued_tasks(broker, queue)
        if name == "smtp.deliver_turn"
    ]


def alert(organization, number: int) -> Email:
    return send_system_email(
        kind=EmailKind.ALERT,
        to=f"oncall{number}@acme.example",
        context={"title": "Disk almost full", "message": "Node 3 at 91%."},
        organization=organization,
    )


@pytest.mark.django_db(transaction=True)
def test_the_id_reaches_the_broker_only_after_the_callers_commit(demo, private_queue):
    broker, queue = private_queue
    # when: the caller queues an email inside its own transaction
    with transaction.atomic():
        email = alert(demo["acme-prod"], 1)
        emails_handed_over()
        # then: nothing is published before the commit
        assert queued_tasks(broker, queue) == []
    # and: after the commit the alert's tenant gets a turn in the bulk lane, once
    emails_handed_over()
    assert queued_turns(broker, queue) == [(demo["acme"].pk, demo["acme-prod"].pk)]
    assert len(queued_tasks(broker, queue)) == 1
    stored = Email.objects.get(pk=email.pk)
    assert stored.enqueued_at is not None
    assert AuditEvent.objects.filter(
        type="email.queued", detail__email_id=email.pk
    ).exists()


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_caller_queues_nothing(demo, private_queue):
    broker, queue = private_queue
    with pytest.raises(RuntimeError), transaction.atomic():
        alert(demo["acme-prod"], 2)
        raise RuntimeError("the caller fails after queueing")
    emails_handed_over()
    assert queued_tasks(broker, queue) == []
    assert not Email.objects.exists()
    assert not AuditEvent.objects.filter(type="email.queued").exists()


@pytest.mark.django_db(transaction=True)
def test_without_a_transaction_the_email_is_handed_over_at_once(
    demo, private_queue, settings
):
    broker, queue = private_queue
    settings.SMTP_TURNS_PER_TENANT = 1
    emails = [alert(demo["acme-prod"], number) for number in range(3)]
    emails_handed_over()
    # one turn: the tenant's only place in the queue; it sends all three
    assert queued_turns(broker, queue) == [(demo["acme"].pk, demo["acme-prod"].pk)]
    assert all(e.enqueued_at is not None for e in Email.objects.all())
    assert len(emails) == 3


@pytest.mark.django_db(transaction=True)
def test_a_password_reset_goes_to_the_interactive_lane_by_its_id(
    demo, private_queue, settings
):
    broker, queue = private_queue
    email = send_system_email(
        kind=EmailKind.PASSWORD_RESET,
        to="someone@acme.example",
        context={"link": "https://console.example/reset/abc"},
        organization=demo["acme-prod"],
    )
    emails_handed_over()
    assert queued_tasks(broker, queue) == []
    assert queued_tasks(broker, settings.CELERY_QUEUE_INTERACTIVE) == [
        ("smtp.deliver_email", {"email_id": email.pk})
    ]
