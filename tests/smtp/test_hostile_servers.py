"""Delivery ends, whatever the server does: drip, flood, echo, or break the client.

The servers are plain sockets on loopback (tests/support/hostile.py) or aiosmtpd;
the client is the real delivery engine.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import threading
import time
import uuid

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from smtp.delivery import build_message, deliver
from smtp.models import Email, EmailKind, EmailStatus, Security, SmtpConfiguration
from smtp.outbox import outbox_deliver
from smtp.services import send_system_email
from tests.support.hostile import drip, echo_auth, flood
from tests.support.smtp_servers import smtp_settings
from tests.support.worker import wait_until

CANARY = "pässwörd-€-Qx7"
USER = "mäiler@acme.example"


def verify(settings_, **options):
    return deliver(
        settings_,
        None,
        sender="alerts@acme.example",
        recipients=["ops@example.com"],
        verify_only=True,
        **options,
    )


# -- the session deadline ------------------------------------------------------------


def test_a_dripping_server_is_cut_off_at_the_session_deadline(hostile, settings):
    # given: a server that never finishes its greeting, but never falls silent
    # for as long as the per-operation timeout either
    settings.SMTP_SESSION_DEADLINE = 2
    server = hostile(drip(0.3))
    # when
    started = time.monotonic()
    outcome = verify(smtp_settings(server.port), timeout=3)
    elapsed = time.monotonic() - started
    # then: the session ends at the deadline, at the step it was in
    assert elapsed < 3, elapsed
    step = outcome.failed_step
    assert not outcome.ok and outcome.transient
    assert step.name == "greeting"
    assert "SMTP_SESSION_DEADLINE" in step.detail
    assert "too slow" in step.hint


def test_a_reused_session_gets_a_new_deadline_for_each_message(smtp_server, settings):
    # A session that lives longer than one deadline still sends: each message
    # on it is bounded on its own.
    from smtp.delivery import SmtpConnection

    settings.SMTP_SESSION_DEADLINE = 1
    server = smtp_server()
    connection = SmtpConnection(smtp_settings(server.port))
    connection.open()
    try:
        for number in range(2):
            time.sleep(1.1)
            connection.renew_deadline()
            connection.send(
                build_message(
                    sender="alerts@acme.example",
                    recipient="ops@example.com",
                    subject="s",
                    body="b",
                    message_id=f"<reuse-{number}@opsconsole.test>",
                ),
                sender="alerts@acme.example",
                recipients=["ops@example.com"],
            )
    finally:
        connection.close()
    assert len(server.messages) == 2


# -- the reply cap -------------------------------------------------------------------


def test_an_endless_reply_fails_the_step_as_too_long(hostile):
    server = hostile(flood)
    started = time.monotonic()
    outcome = verify(smtp_settings(server.port))
    assert time.monotonic() - started < 2
    step = outcome.failed_step
    assert step.name == "greeting"
    assert "Reply too long" in step.detail
    assert not outcome.transient
    assert len(step.reply) <= 300


# -- credentials ---------------------------------------------------------------------


def test_non_ascii_credentials_log_in_as_utf8(smtp_server, certs, trust_test_ca):
    server = smtp_server(starttls=certs.server, users={USER: CANARY})
    outcome = deliver(
        smtp_settings(
            server.port,
            security=Security.STARTTLS,
            username=USER,
            password=CANARY,
        ),
        build_message(
            sender="alerts@acme.example",
            recipient="ops@example.com",
            subject="Hello",
            body="Non-ASCII login.",
            message_id="<utf8-login@opsconsole.test>",
        ),
        sender="alerts@acme.example",
        recipients=["ops@example.com"],
    )
    assert outcome.ok, [s.as_dict() for s in outcome.steps]
    assert [m.message_id for m in server.messages] == ["<utf8-login@opsconsole.test>"]


def test_a_wrong_password_is_tried_with_one_mechanism_only(
    smtp_server, certs, trust_test_ca
):
    server = smtp_server(starttls=certs.server, users={USER: "right"})
    outcome = verify(
        smtp_settings(
            server.port, security=Security.STARTTLS, username=USER, password=CANARY
        )
    )
    assert outcome.failed_step.name == "auth"
    assert outcome.failed_step.reply_code == 535
    # PLAIN and LOGIN are both offered; a second try would count twice against
    # the server's lockout.
    assert server.auth_attempts == 1


# -- echoed secrets ------------------------------------------------------------------


def echo_forms(user: str, password: str) -> list[str]:
    raw = password.encode()
    return [
        password,
        password.upper(),
        raw.hex(),
        raw.hex().upper(),
        password[::-1],
        " ".join(password),
        base64.b64encode(raw).decode(),
        base64.b64encode(f"\0{user}\0{password}".encode()).decode(),
        "\x1b[31mred\x1b[0m",
    ]


def test_a_server_that_echoes_the_password_in_any_form_shows_none(hostile):
    server = hostile(echo_auth(echo_forms))
    outcome = verify(
        smtp_settings(server.port, username=USER, password=CANARY, insecure=True)
    )
    step = outcome.failed_step
    assert step.name == "auth"
    # The provider's words stay: they tell the admin what happened.
    assert "5.7.139 Authentication unsuccessful" in step.reply
    recorded = json.dumps([s.as_dict() for s in outcome.steps], ensure_ascii=False)
    for form in echo_forms(USER, CANARY)[:-1]:
        assert form not in recorded
        assert form.lower() not in recorded.lower()
    assert CANARY[2:8] not in recorded  # no part of it either
    assert "\x1b" not in recorded and "\\u001b" not in recorded


# -- nothing unexpected escapes ------------------------------------------------------


def test_an_exception_inside_the_session_is_a_failed_step(smtp_server):
    def broken_resolver(host, port):
        raise RuntimeError(f"resolver bug for {CANARY}")

    outcome = verify(smtp_settings(25), resolver=broken_resolver)
    step = outcome.failed_step
    assert step.name == "resolve"
    assert "RuntimeError" in step.detail
    assert CANARY not in json.dumps([s.as_dict() for s in outcome.steps])
    assert outcome.transient


def _configure(partner, port: int) -> SmtpConfiguration:
    return SmtpConfiguration.objects.create(
        partner=partner, host="127.0.0.1", port=port, security=Security.NONE
    )


def _alert(organization, number: int = 0) -> Email:
    return send_system_email(
        kind=EmailKind.ALERT,
        to=f"oncall{number}@acme.example",
        context={"title": "Disk full", "message": "m"},
        organization=organization,
    )


@pytest.mark.django_db(transaction=True)
def test_a_time_limit_mid_session_defers_the_email_and_gives_the_rest_back(
    demo, hostile, settings
):
    # given: a batch of three alerts for a server that drips its greeting, and
    # the task's soft time limit arriving as Celery delivers it (SIGUSR1 raising
    # SoftTimeLimitExceeded in the task's thread); their tasks go to a queue no
    # worker reads, so that only this test sends them
    settings.CELERY_TASK_DEFAULT_QUEUE = f"unread-{uuid.uuid4().hex[:10]}"
    server = hostile(drip(0.3))
    _configure(demo["acme"], server.port)
    emails = [_alert(demo["acme-prod"], number) for number in range(3)]

    def soft_limit(signum, frame):
        raise SoftTimeLimitExceeded()

    def limit_during_greeting() -> None:
        wait_until(lambda: server.connections >= 1, timeout=10)
        time.sleep(0.5)  # the client is waiting for the rest of the greeting
        os.kill(os.getpid(), signal.SIGUSR1)

    previous = signal.signal(signal.SIGUSR1, soft_limit)
    timer = threading.Thread(target=limit_during_greeting, daemon=True)
    timer.start()
    try:
        # when
        outbox_deliver(email_id=emails[0].pk)
    finally:
        timer.join()
        signal.signal(signal.SIGUSR1, previous)
    # then: the first is deferred at its step, the others are queued untried
    first, *rest = (Email.objects.get(pk=email.pk) for email in emails)
    assert first.status == EmailStatus.QUEUED
    assert first.attempts == 1
    assert first.failed_step == "greeting"
    assert "time limit" in first.last_error
    for email in rest:
        assert email.status == EmailStatus.QUEUED
        assert email.attempts == 0
        assert email.claim_token is None


def test_tasks_that_speak_smtp_end_inside_the_lease(settings):
    import smtp.tasks  # noqa: F401  (registers the tasks, as a worker does)
    from opsconsole.celery import app

    for name in ("smtp.deliver_email", "smtp.deliver_emails", "smtp.health_check"):
        task = app.tasks[name]
        assert 0 < task.soft_time_limit < task.time_limit < settings.SMTP_LEASE_SECONDS
    assert (
        settings.SMTP_BATCH_SECONDS + 2 * settings.SMTP_SESSION_DEADLINE
        < settings.SMTP_TASK_SOFT_TIME_LIMIT
    )
