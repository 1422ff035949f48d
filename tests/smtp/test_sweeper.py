"""The sweeper: no email is left non-final, and no email takes down workers for
ever. Rows are put in the state a stopped worker leaves; the real sweeper runs."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from smtp.models import Email, EmailAttempt, EmailKind, EmailStatus
from smtp.outbox import outbox_sweep
from smtp.outbox.claims import claim_more, claim_one
from smtp.outbox.recording import Result, record_results
from smtp.services import send_system_email

pytestmark = pytest.mark.django_db


def alert(demo) -> Email:
    return send_system_email(
        kind=EmailKind.ALERT,
        to="oncall@acme.example",
        context={"title": "Disk full", "message": "m"},
        organization=demo["acme-prod"],
    )


def worker_stopped(email: Email, **fields) -> None:
    """The row as a worker leaves it that stopped (SIGKILL, OOM) while holding it,
    once its lease ran out."""
    values = {
        "status": EmailStatus.SENDING,
        "claim_token": uuid.uuid4(),
        "lease_until": timezone.now() - timedelta(seconds=1),
        "progress": "claimed",
    }
    Email.objects.filter(pk=email.pk).update(**{**values, **fields})
    email.refresh_from_db()


def test_an_email_whose_lease_ran_out_is_queued_and_handed_out_again(demo):
    email = alert(demo)
    # given: its worker stopped while sending it, and the broker message that
    # the sweeper publishes will be lost (nothing consumes it here)
    worker_stopped(email)
    # when
    published = outbox_sweep()
    # then: it is back in the queue, handed out, and the stop is counted
    email.refresh_from_db()
    assert published == 1
    assert (email.status, email.rehands, email.claim_token) == ("queued", 1, None)
    assert email.enqueued_at is not None
    # and it is not published again at every sweep...
    assert outbox_sweep() == 0
    # ...but once its message has waited SMTP_REQUEUE_AFTER_SECONDS
    an_hour_ago = timezone.now() - timedelta(hours=1)
    Email.objects.filter(pk=email.pk).update(
        enqueued_at=an_hour_ago, next_attempt_at=an_hour_ago
    )
    assert outbox_sweep() == 1


def test_an_email_handed_out_whatever_its_enqueued_at(demo):
    # given: the sweeper already published it after its lease, and that message
    # was lost (a Redis restart): published after the lease ended
    email = alert(demo)
    worker_stopped(email)
    Email.objects.filter(pk=email.pk).update(
        enqueued_at=timezone.now(), lease_until=timezone.now() - timedelta(hours=1)
    )
    # when
    outbox_sweep()
    # then
    email.refresh_from_db()
    assert email.status == EmailStatus.QUEUED


def test_emails_whose_worker_stopped_are_then_sent_on_their_own(demo):
    # given: two alerts of one tenant; the worker holding the first stopped
    first, second = alert(demo), alert(demo)
    worker_stopped(first)
    outbox_sweep()
    # when: a worker claims the second with a batch of its tenant's
    token = uuid.uuid4()
    now = timezone.now()
    claimed = claim_one(second.pk, token=token, now=now)
    more = claim_more(claimed, token=token, now=now, limit=10)
    # then: the one its worker stopped on is not in the batch
    assert more == []
    first.refresh_from_db()
    assert (first.status, first.rehands) == ("queued", 1)


def test_an_accepted_email_whose_worker_stopped_is_recorded_not_sent_again(demo):
    # given: the server accepted it and the worker wrote its attempt, then
    # stopped before recording the rest (the row, the email.sent event)
    email = alert(demo)
    worker_stopped(email)
    steps = [
        {"name": "mail_from", "status": "ok", "duration_ms": 3, "reply": "OK"},
        {"name": "data", "status": "ok", "duration_ms": 7, "reply": "2.0.0 queued"},
    ]
    EmailAttempt.objects.create(
        email=email,
        number=1,
        started_at=timezone.now(),
        duration_ms=10,
        ok=True,
        level="partner",
        server="smtp.acme.example:587",
        steps=steps,
    )
    # when
    assert outbox_sweep() == 0
    # then: it is sent, with that one attempt and its email.sent event
    email.refresh_from_db()
    assert (email.status, email.attempts, email.claim_token) == ("sent", 1, None)
    assert (email.level_used, email.server) == ("partner", "smtp.acme.example:587")
    assert EmailAttempt.objects.filter(email=email).count() == 1
    event = AuditEvent.objects.get(type="email.sent", detail__email_id=email.pk)
    assert event.detail["reply"] == "2.0.0 queued"
    assert event.detail["server"] == "smtp.acme.example:587"


def test_an_email_whose_worker_keeps_stopping_fails_at_step_lease(demo, settings):
    settings.SMTP_MAX_REHANDS = 2
    email = alert(demo)
    # given: handed out twice after its worker stopped
    for stops in (1, 2):
        worker_stopped(email)
        outbox_sweep()
        email.refresh_from_db()
        assert (email.status, email.rehands) == ("queued", stops)
    # when: its worker stops a third time
    worker_stopped(email)
    assert outbox_sweep() == 0
    # then: it fails, naming the step, the count and what to look at
    email.refresh_from_db()
    assert email.status == EmailStatus.FAILED
    assert email.failed_step == "lease"
    assert "stopped 3 times" in email.last_error
    assert "SMTP_MAX_REHANDS" in email.last_error
    assert "worker logs" in email.hint
    assert email.finished_at is not None and email.claim_token is None
    failed = AuditEvent.objects.get(type="email.failed", detail__email_id=email.pk)
    assert failed.detail["step"] == "lease"
    assert failed.detail["final"] is True
    assert "stopped 3 times" in failed.detail["reason"]
    attempt = EmailAttempt.objects.get(email=email)
    assert (attempt.ok, attempt.failed_step) == (False, "lease")


def test_a_recorded_attempt_resets_the_count(demo, settings):
    settings.SMTP_MAX_REHANDS = 1
    email = alert(demo)
    worker_stopped(email)
    outbox_sweep()
    # given: a worker then got as far as recording an attempt (deferred)
    token = uuid.uuid4()
    claimed = claim_one(email.pk, token=token, now=timezone.now())
    record_results(
        [
            Result(
                email=claimed,
                ok=False,
                steps=[
                    {"name": "data", "status": "failed", "reply_code": 451},
                ],
                started_at=timezone.now(),
                duration_ms=5,
                settings=None,
                transient=True,
            )
        ],
        token=token,
    )
    email.refresh_from_db()
    assert email.rehands == 0
    # when: its next worker stops
    worker_stopped(email)
    outbox_sweep()
    # then: that is the first stop since the attempt, not the second
    email.refresh_from_db()
    assert (email.status, email.rehands) == ("queued", 1)
