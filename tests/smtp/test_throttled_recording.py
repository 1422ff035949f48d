"""Recording throttled attempts and delays: no retry used, attempt numbers that
never collide, the sweeper still finding an accepted email, and the bound on
how long an email may be throttled. Rows are claimed and recorded as a worker
does; the real recording code runs."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from smtp.delivery import Step
from smtp.delivery.hints import THROTTLING_HINT
from smtp.models import Email, EmailAttempt, EmailKind, EmailStatus
from smtp.outbox import outbox_sweep
from smtp.outbox.claims import claim_one
from smtp.outbox.delays import record_delayed
from smtp.outbox.recording import (
    MAX_RETRY_DELAY,
    Result,
    record_accepted,
    record_results,
)
from smtp.services import send_system_email
from tests.support.smtp_servers import smtp_settings

pytestmark = pytest.mark.django_db


def alert(demo) -> Email:
    return send_system_email(
        kind=EmailKind.ALERT,
        to="oncall@acme.example",
        context={"title": "Disk full", "message": "m"},
        partner=demo["acme"],
    )


def claimed(email: Email) -> tuple[Email, uuid.UUID]:
    token = uuid.uuid4()
    Email.objects.filter(pk=email.pk).update(next_attempt_at=timezone.now())
    mine = claim_one(email.pk, token=token, now=timezone.now())
    assert mine is not None
    return mine, token


def throttled_result(email: Email, *, defer_for: float = 30.0) -> Result:
    step = Step(
        name="data",
        status="failed",
        reply_code=421,
        reply="4.7.0 throttled",
        detail="The server refused DATA (421).",
        hint=THROTTLING_HINT,
        hint_code="throttled",
    )
    result = Result.failure(
        email, [step.as_dict()], smtp_settings(2525, retries=1), transient=True
    )
    result.throttled = True
    result.defer_for = defer_for
    return result


def test_a_throttled_attempt_puts_the_email_back_without_using_a_retry(demo):
    email, token = claimed(alert(demo))
    before = timezone.now()

    record_results([throttled_result(email, defer_for=30)], token=token)

    email.refresh_from_db()
    assert email.status == EmailStatus.QUEUED
    assert (email.attempts, email.deferrals) == (0, 1)
    assert email.claim_token is None
    assert email.next_attempt_at >= before + timedelta(seconds=29)
    assert email.hint == THROTTLING_HINT
    attempt = EmailAttempt.objects.get(email=email)
    assert (attempt.number, attempt.throttled, attempt.ok) == (1, True, False)
    event = AuditEvent.objects.get(type="email.deferred", detail__email_id=email.pk)
    assert event.detail["reason"] == "throttled"
    assert event.detail["attempt"] == 0
    assert "without using a retry" in event.summary


def test_attempt_numbers_follow_throttled_ones_and_the_sweeper_finds_the_sent_one(
    demo,
):
    # given: throttled twice, then accepted by the server, and the worker
    # stopped before it recorded the email as sent
    email = alert(demo)
    for _ in range(2):
        mine, token = claimed(email)
        record_results([throttled_result(mine, defer_for=0)], token=token)
    mine, token = claimed(email)
    accepted = Result.timed(
        mine,
        smtp_settings(2525, retries=1),
        [Step(name="data", status="ok", reply_code=250, reply="2.0.0 OK")],
        ok=True,
        started_at=timezone.now(),
        clock=time.monotonic(),
        reply="2.0.0 OK",
    )
    record_accepted(accepted)
    Email.objects.filter(pk=email.pk).update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )

    # when: the sweeper finds its lease ran out
    outbox_sweep()

    # then: recorded as sent, not sent again; one counted attempt
    email.refresh_from_db()
    assert email.status == EmailStatus.SENT
    assert (email.attempts, email.deferrals) == (1, 2)
    assert list(
        EmailAttempt.objects.filter(email=email).values_list("number", "throttled")
    ) == [(1, True), (2, True), (3, False)]
    assert AuditEvent.objects.filter(
        type="email.sent", detail__email_id=email.pk
    ).exists()


def test_an_email_throttled_for_too_long_fails_saying_so(demo, settings):
    settings.SMTP_MAX_DEFER_SECONDS = 3600
    email = alert(demo)
    Email.objects.filter(pk=email.pk).update(
        created_at=timezone.now() - timedelta(hours=2), deferrals=40
    )
    mine, token = claimed(email)

    record_results([throttled_result(mine)], token=token)

    email.refresh_from_db()
    assert email.status == EmailStatus.FAILED
    assert "still throttling 2.0 h after this email was queued" in email.last_error
    assert "SMTP_MAX_DEFER_SECONDS" in email.last_error
    failed = AuditEvent.objects.get(type="email.failed", detail__email_id=email.pk)
    assert "SMTP_MAX_DEFER_SECONDS" in failed.detail["reason"]
    assert EmailAttempt.objects.get(email=email).number == 41


def test_emails_held_by_a_limit_go_back_with_an_event_and_no_attempt(demo):
    first, second = alert(demo), alert(demo)
    first, token = claimed(first)
    second_mine = claim_one(second.pk, token=token, now=timezone.now())

    record_delayed(
        [first, second_mine],
        [5.0, 65.0],
        token=token,
        reason="rate",
        server=smtp_settings(2525),
    )

    rows = {e.pk: e for e in Email.objects.filter(pk__in=[first.pk, second.pk])}
    for email in rows.values():
        assert (email.status, email.attempts, email.deferrals) == ("queued", 0, 1)
        assert email.claim_token is None
    gap = rows[second.pk].next_attempt_at - rows[first.pk].next_attempt_at
    assert timedelta(seconds=59) < gap < timedelta(seconds=61)
    assert not EmailAttempt.objects.exists()
    events = AuditEvent.objects.filter(type="email.delayed")
    assert events.count() == 2
    assert {e.detail["reason"] for e in events} == {"limit"}
    assert "Messages per minute" in events.first().summary


def test_a_delay_does_not_touch_an_email_another_worker_owns(demo):
    email, _ = claimed(alert(demo))
    record_delayed(
        [email], [5.0], token=uuid.uuid4(), reason="rate", server=smtp_settings(25)
    )
    email.refresh_from_db()
    assert (email.status, email.deferrals) == (EmailStatus.SENDING, 0)
    assert not AuditEvent.objects.filter(type="email.delayed").exists()


def test_the_email_page_shows_delays_and_throttled_attempts(demo, login):
    email, token = claimed(alert(demo))
    record_results([throttled_result(email, defer_for=30)], token=token)

    html = login(demo["acme_admin"]).get(f"/ops/emails/{email.pk}/").content.decode()

    assert "1 time by delivery limits or a throttling server (no retry used)" in html
    assert "Attempt 1: failed at DATA (message) (421), the server is throttling" in html
    assert "sent later without using a retry" in html
    assert THROTTLING_HINT in html


def test_a_long_delay_is_published_within_what_the_broker_holds(
    demo, django_capture_on_commit_callbacks
):
    email, token = claimed(alert(demo))
    with django_capture_on_commit_callbacks() as callbacks:
        record_delayed(
            [email], [3 * 3600.0], token=token, reason="rate", server=smtp_settings(25)
        )
    (publish,) = callbacks
    assert publish.args == (email.pk,)
    assert publish.keywords["countdown"] == MAX_RETRY_DELAY
    # the row keeps the real time: the sweeper hands it out when it is due
    email.refresh_from_db()
    assert email.next_attempt_at > timezone.now() + timedelta(hours=2.9)
