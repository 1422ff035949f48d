"""Queueing a system email: the row and its event in the caller's transaction,
the id handed to the broker after commit, without the caller waiting for it."""

from __future__ import annotations

import json
import os
import uuid

import pytest
from django.db import transaction

from audit.models import AuditEvent
from smtp.models import Email, EmailKind
from smtp.outbox.publish import emails_handed_over
from smtp.services import send_system_email

pytestmark = pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="reads the broker's queue in Redis"
)


def queued_ids(broker, queue: str) -> list[int]:
    """The email ids of the deliver tasks waiting in ``queue``."""
    import base64

    ids = []
    for raw in broker.lrange(queue, 0, -1):
        message = json.loads(raw)
        body = json.loads(base64.b64decode(message["body"]))
        ids.append(body[1]["email_id"])
    return ids


@pytest.fixture
def private_queue(settings):
    """A queue of this test's own that no worker consumes."""
    import redis

    broker = redis.Redis.from_url(
        os.environ["REDIS_URL"], socket_timeout=5, socket_connect_timeout=5
    )
    settings.CELERY_TASK_DEFAULT_QUEUE = f"enqueue-{uuid.uuid4().hex[:10]}"
    yield broker, settings.CELERY_TASK_DEFAULT_QUEUE
    broker.delete(settings.CELERY_TASK_DEFAULT_QUEUE)
    broker.close()


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
        assert queued_ids(broker, queue) == []
    # and: after the commit the id is handed over, once
    emails_handed_over()
    assert queued_ids(broker, queue) == [email.pk]
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
    assert queued_ids(broker, queue) == []
    assert not Email.objects.exists()
    assert not AuditEvent.objects.filter(type="email.queued").exists()


@pytest.mark.django_db(transaction=True)
def test_without_a_transaction_the_email_is_handed_over_at_once(demo, private_queue):
    broker, queue = private_queue
    emails = [alert(demo["acme-prod"], number) for number in range(3)]
    emails_handed_over()
    assert sorted(queued_ids(broker, queue)) == sorted(e.pk for e in emails)
