"""Delivery limits and throttling servers with real workers (Redis, the test
database) and aiosmtpd servers that limit their clients as providers do.

Each test starts a worker of its own, with short windows and pauses, so that a
minute's rate or a provider's pause fits in seconds.
"""

from __future__ import annotations

from collections import Counter

import pytest
from django.conf import settings
from django.db import transaction

from audit.models import AuditEvent
from core.models import WorkerHeartbeat
from core.tasks import heartbeat_task
from smtp.delivery.hints import THROTTLING_HINT
from smtp.models import (
    Email,
    EmailAttempt,
    EmailKind,
    EmailStatus,
    Security,
    SmtpConfiguration,
)
from smtp.services import send_system_email
from tests.support.limited_servers import LimitedServer, Watch
from tests.support.worker import WorkerProcess, wait_until

# Fast sweeps: a message taken by the paused shared worker, if any, is handed
# out again in seconds.
FAST = {
    "SMTP_SWEEP_INTERVAL": "0.5",
    "SMTP_REQUEUE_AFTER_SECONDS": "3",
    "SMTP_THROTTLE_PAUSE_SECONDS": "0.3",
    "SMTP_THROTTLE_MAX_PAUSE_SECONDS": "1.5",
}


@pytest.fixture
def own_worker(no_shared_worker, transactional_db):
    """``own_worker(concurrency=..., **env)``: a worker of this test, on the
    suite's queues, with these settings."""
    started: list[WorkerProcess] = []

    def start(*, concurrency: int = 4, **env: object) -> WorkerProcess:
        worker = WorkerProcess(
            queue=settings.CELERY_TASK_DEFAULT_QUEUE,
            concurrency=concurrency,
            extra_env={**FAST, **{name: str(value) for name, value in env.items()}},
        ).start()
        started.append(worker)
        heartbeat_task.delay()
        try:
            wait_until(WorkerHeartbeat.objects.exists, timeout=60)
        except TimeoutError:
            pytest.fail("the worker did not start:\n" + worker.log_tail())
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def limited_server():
    started: list[LimitedServer] = []

    def start(watch: Watch) -> LimitedServer:
        server = LimitedServer(watch)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def configure(partner, server: LimitedServer, **fields) -> SmtpConfiguration:
    return SmtpConfiguration.objects.create(
        partner=partner,
        host="127.0.0.1",
        port=server.port,
        security=Security.NONE,
        **{"retries": 1, **fields},
    )


def alerts(partner, count: int, *, refused: str = "") -> list[Email]:
    """``count`` alerts of one tenant, committed together (one batch can take
    them all)."""
    with transaction.atomic():
        return [
            send_system_email(
                kind=EmailKind.ALERT,
                to=refused if refused and n == 1 else f"oncall{n}@acme.example",
                context={"title": f"Alert {n}", "message": "m"},
                partner=partner,
            )
            for n in range(count)
        ]


def all_final(emails: list[Email], timeout: float) -> list[Email]:
    ids = [email.pk for email in emails]

    def done() -> bool:
        return not Email.objects.filter(
            pk__in=ids, status__in=[EmailStatus.QUEUED, EmailStatus.SENDING]
        ).exists()

    try:
        wait_until(done, timeout=timeout, interval=0.2)
    except TimeoutError:
        states = Counter(
            Email.objects.filter(pk__in=ids).values_list("status", flat=True)
        )
        pytest.fail(f"not all final within {timeout} s: {dict(states)}")
    return list(Email.objects.filter(pk__in=ids).order_by("pk"))


def counted_attempts(email: Email) -> int:
    return EmailAttempt.objects.filter(email=email, throttled=False).count()


def assert_each_received_once(server: LimitedServer, emails: list[Email]) -> None:
    received = Counter(message.message_id for message in server.messages)
    assert received == Counter(email.message_id for email in emails)


def test_a_server_refusing_a_fourth_connection_delays_without_using_retries(
    own_worker, limited_server, demo, settings
):
    # given: a server that answers 432 4.3.2 to a 4th concurrent connection, a
    # configuration without a connection limit of its own, and six worker
    # threads that each take one email at a time, up to six turns of the tenant
    watch = Watch(max_connections=3, data_delay=0.2)
    server = limited_server(watch)
    configure(demo["acme"], server, max_connections=0, retries=1)
    settings.SMTP_TURNS_PER_TENANT = 6
    own_worker(concurrency=6, SMTP_BATCH_SIZE=1, SMTP_TURNS_PER_TENANT=6)

    # when
    emails = all_final(alerts(demo["acme"], 12), timeout=120)

    # then: every email sent once, none used a retry
    assert [e.status for e in emails] == [EmailStatus.SENT] * 12
    assert [e.attempts for e in emails] == [1] * 12
    assert [counted_attempts(e) for e in emails] == [1] * 12
    assert_each_received_once(server, emails)
    assert watch.refused_connections > 0
    assert watch.most <= 3
    # the refusals are recorded as throttled attempts, with the hint
    throttled = list(EmailAttempt.objects.filter(throttled=True))
    assert throttled
    assert {(a.failed_step, a.reply_code) for a in throttled} == {("greeting", 432)}
    assert all(a.transient and not a.ok for a in throttled)
    assert all(a.steps[-1]["hint"] == THROTTLING_HINT for a in throttled)
    for email in emails:
        mine = sum(1 for a in throttled if a.email_id == email.pk)
        assert email.deferrals >= mine
    # numbered one after the other, never colliding with the counted attempt
    for email in emails:
        numbers = list(
            EmailAttempt.objects.filter(email=email).values_list("number", flat=True)
        )
        assert len(numbers) == len(set(numbers))
    deferred = AuditEvent.objects.filter(
        type="email.deferred", detail__reason="throttled"
    )
    assert deferred.count() == len(throttled)
    assert not AuditEvent.objects.filter(type="email.failed").exists()


def test_a_server_throttling_every_third_message_delays_without_using_retries(
    own_worker, limited_server, demo
):
    # given: a server that answers 421 4.7.0 throttled to every 3rd DATA
    watch = Watch(throttle_every=3)
    server = limited_server(watch)
    configure(demo["acme"], server, retries=1)
    own_worker()

    # when
    emails = all_final(alerts(demo["acme"], 12), timeout=120)

    # then
    assert [e.status for e in emails] == [EmailStatus.SENT] * 12
    assert [e.attempts for e in emails] == [1] * 12
    assert [counted_attempts(e) for e in emails] == [1] * 12
    assert_each_received_once(server, emails)
    assert watch.throttled >= 4
    throttled = list(EmailAttempt.objects.filter(throttled=True))
    assert len(throttled) == watch.throttled
    assert {(a.failed_step, a.reply_code) for a in throttled} == {("data", 421)}
    assert all(a.steps[-1]["hint_code"] == "throttled" for a in throttled)
    assert sum(e.deferrals for e in emails) >= len(throttled)
    assert {a.email_id for a in throttled} <= {e.pk for e in emails if e.deferrals}
    event = AuditEvent.objects.filter(
        type="email.deferred", detail__reason="throttled"
    ).first()
    assert event is not None
    assert "the server is throttling" in event.summary
    assert "without using a retry" in event.summary
    assert event.detail["hint"] == THROTTLING_HINT


def test_a_refused_recipient_fails_once_and_the_batch_goes_on(
    own_worker, limited_server, demo
):
    # given: a batch of three, the second to a recipient the server refuses
    watch = Watch(refuse_recipients={"nobody@acme.example"})
    server = limited_server(watch)
    configure(demo["acme"], server, retries=3)
    own_worker()

    # when
    emails = all_final(
        alerts(demo["acme"], 3, refused="nobody@acme.example"), timeout=60
    )

    # then: that one failed at once (550 is permanent), the others were sent
    refused = emails[1]
    assert refused.status == EmailStatus.FAILED
    assert (refused.attempts, refused.deferrals) == (1, 0)
    assert (refused.failed_step, refused.reply_code) == ("rcpt_to", 550)
    assert EmailAttempt.objects.filter(email=refused).count() == 1
    assert not EmailAttempt.objects.filter(throttled=True).exists()
    for email in (emails[0], emails[2]):
        assert (email.status, email.attempts, email.deferrals) == (
            EmailStatus.SENT,
            1,
            0,
        )
    assert_each_received_once(server, [emails[0], emails[2]])


def test_no_window_at_the_server_holds_more_than_messages_per_minute(
    own_worker, limited_server, demo
):
    # given: 4 messages per window, the window shortened to 3 s, 12 emails
    window = 3.0
    watch = Watch()
    server = limited_server(watch)
    configure(demo["acme"], server, messages_per_minute=4)
    own_worker(SMTP_RATE_WINDOW_SECONDS=window)

    # when
    emails = all_final(alerts(demo["acme"], 12), timeout=120)

    # then: all arrived, never more than 4 in any 3 s at the server
    assert [e.status for e in emails] == [EmailStatus.SENT] * 12
    assert_each_received_once(server, emails)
    assert watch.most_in_window(window) <= 4
    # held back, not failed: no retry used, each held time counted
    assert [e.attempts for e in emails] == [1] * 12
    assert EmailAttempt.objects.count() == 12
    assert sum(1 for e in emails if e.deferrals) >= 4
    delayed = AuditEvent.objects.filter(type="email.delayed")
    assert delayed.exists()
    assert {e.detail["reason"] for e in delayed} == {"limit"}
    assert {e.detail["limit"] for e in delayed} == {"rate"}
    assert "delayed" in delayed.first().summary
    assert sum(e.deferrals for e in emails) == delayed.count()


def test_never_more_connections_than_max_connections(
    own_worker, limited_server, demo, settings
):
    # given: a limit of 2 connections, six threads that each take one email,
    # up to six turns of the tenant at once
    watch = Watch(data_delay=0.15)
    server = limited_server(watch)
    configure(demo["acme"], server, max_connections=2)
    settings.SMTP_TURNS_PER_TENANT = 6
    own_worker(concurrency=6, SMTP_BATCH_SIZE=1, SMTP_TURNS_PER_TENANT=6)

    # when
    emails = all_final(alerts(demo["acme"], 12), timeout=120)

    # then
    assert [e.status for e in emails] == [EmailStatus.SENT] * 12
    assert [e.attempts for e in emails] == [1] * 12
    assert_each_received_once(server, emails)
    assert 1 <= watch.most <= 2
    assert not EmailAttempt.objects.filter(ok=False).exists()


def test_a_test_email_is_not_held_by_the_limit_that_holds_alerts(
    worker, limited_server, demo
):
    from smtp.services import smtp_test_email_request
    from tenants.selectors import tenant_scope_for_user

    # given: one message per minute, already used by an alert
    watch = Watch()
    server = limited_server(watch)
    configure(demo["acme"], server, messages_per_minute=1)
    first = all_final(alerts(demo["acme"], 1), timeout=60)[0]
    assert first.status == EmailStatus.SENT

    # when: another alert, and an admin's test email
    held = alerts(demo["acme"], 1)[0]
    wait_until(
        lambda: Email.objects.filter(pk=held.pk, deferrals__gte=1).exists(),
        timeout=60,
    )
    admin = demo["acme_admin"]
    test = smtp_test_email_request(
        scope=tenant_scope_for_user(user=admin),
        actor=admin,
        recipient="partner-admin@acme.example",
    )

    # then: the test email goes at once; the alert waits for its minute
    (test,) = all_final([test], timeout=60)
    assert test.status == EmailStatus.SENT
    held.refresh_from_db()
    assert (held.status, held.attempts) == (EmailStatus.QUEUED, 0)
    assert held.next_attempt_at > test.finished_at
    assert AuditEvent.objects.filter(
        type="email.delayed", detail__email_id=held.pk
    ).exists()
    assert {m.message_id for m in server.messages} == {
        first.message_id,
        test.message_id,
    }
