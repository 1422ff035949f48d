"""A real worker against hostile servers: every email ends, memory stays bounded,
and no secret reaches the worker's log in any form."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection
from django.test import override_settings

from audit.models import AuditEvent
from smtp.models import Email, EmailKind, EmailStatus, Security, SmtpConfiguration
from smtp.services import send_system_email
from tenants.models import Organization
from tests.support.hostile import drip, echo_auth, flood
from tests.support.smtp_servers import SmtpTestServer
from tests.support.worker import ROOT, WorkerProcess, deployed_pool, wait_until

CANARY = "pässwörd-€-Worker9"
USER = "mailer@acme.example"


def canary_forms(user: str = USER, password: str = CANARY) -> list[str]:
    raw = password.encode()
    return [
        password,
        raw.hex(),
        base64.b64encode(raw).decode(),
        base64.b64encode(f"\0{user}\0{password}".encode()).decode(),
        password.encode("unicode_escape").decode(),
        repr(raw)[2:-1],
    ]


def configure(partner, port: int, **fields) -> SmtpConfiguration:
    return SmtpConfiguration.objects.create(
        partner=partner,
        host="127.0.0.1",
        port=port,
        security=Security.NONE,
        **fields,
    )


def alert(organization) -> Email:
    return send_system_email(
        kind=EmailKind.ALERT,
        to="oncall@acme.example",
        context={"title": "Disk full", "message": "m"},
        organization=organization,
    )


def settled(email: Email, timeout: float) -> Email:
    """The email once it has been tried (deferred or final), not while sending."""

    def tried() -> bool:
        email.refresh_from_db()
        return email.attempts >= 1 and email.status != EmailStatus.SENDING

    wait_until(tried, timeout=timeout)
    return email


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_dripping_server_defers_the_email_at_the_deadline(demo, worker, hostile):
    # given: the suite's session deadline (tests/settings.py) and a server that
    # sends one byte a second, under the per-operation timeout
    server = hostile(drip(1.0))
    configure(demo["acme"], server.port)
    started = time.monotonic()
    # when
    email = settled(alert(demo["acme-prod"]), timeout=30)
    # then: deferred at its step with the reason, within the deadline
    assert time.monotonic() - started < 20
    assert email.status == EmailStatus.QUEUED
    assert email.failed_step == "greeting"
    assert "too slow" in email.hint
    assert AuditEvent.objects.filter(
        type="email.deferred", detail__email_id=email.pk
    ).exists()


def test_a_flooding_server_does_not_grow_the_worker(demo, worker, hostile):
    server = hostile(flood)
    configure(demo["acme"], server.port)
    before = rss_kib(worker.process.pid)
    email = alert(demo["acme-prod"])
    peak = before
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        peak = max(peak, rss_kib(worker.process.pid))
        email.refresh_from_db()
        if email.attempts >= 1 and email.status != EmailStatus.SENDING:
            break
        time.sleep(0.02)
    assert email.status == EmailStatus.FAILED
    assert email.failed_step == "greeting"
    assert "Reply too long" in email.last_error
    assert server.connections == 1
    assert (peak - before) < 50 * 1024, f"worker grew by {(peak - before) // 1024} MB"


def test_an_undecryptable_password_fails_the_email_instead_of_stranding_it(
    demo, worker, hostile
):
    # given: a stored password that the worker's keys cannot decrypt (keys
    # rotated out too early), written past the encrypted field
    server = hostile(drip(1.0))
    configuration = configure(demo["acme"], server.port, username=USER, password="x")
    table = connection.ops.quote_name(SmtpConfiguration._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET password = %s WHERE id = %s",  # noqa: S608
            [b"gAAAAABnot-a-token-of-these-keys", configuration.pk],
        )
    # when
    email = settled(alert(demo["acme-prod"]), timeout=30)
    # then: it ends, with the step and the kind of error, and no connection
    assert email.status == EmailStatus.FAILED
    assert email.failed_step == "internal"
    assert "InvalidToken" in email.last_error
    assert server.connections == 0


def test_no_secret_reaches_the_worker_log(demo, worker, hostile):
    # given: a non-ASCII password and a server that echoes it back in its 535
    def forms(user: str, password: str) -> list[str]:
        return [password, password.encode().hex(), password[::-1]]

    echo = hostile(echo_auth(forms))
    configure(demo["acme"], echo.port, username=USER, password=CANARY)
    email = settled(alert(demo["acme-prod"]), timeout=30)
    assert email.failed_step == "auth"
    log = worker.log_path.read_text(errors="replace")
    for form in canary_forms():
        assert form not in log
    for form in canary_forms():
        assert form not in str(email.steps) + email.last_error


def test_a_logged_exception_carrying_a_secret_is_scrubbed_in_a_real_process():
    # A process set up as web, worker and beat are (django.setup()), logging an
    # exception whose text and repr hold a password its settings know of: the
    # UnicodeEncodeError smtplib raised for a non-ASCII password looked so.
    script = f"""
import django, logging
django.setup()
from smtp.delivery.server import Secret, SmtpServer
from smtp.models import Level, Security
SmtpServer(level=Level.PARTNER, host="h", port=25, security=Security.NONE,
    use_insecure=False, username={USER!r}, password=Secret({CANARY!r}), retries=1,
    sender_email="a@b.example", sender_origin="configured", trusted=False)
try:
    ("\\0{USER}\\0" + {CANARY!r}).encode("ascii")
except UnicodeEncodeError as error:
    logging.getLogger("smtp").exception("AUTH failed: %r", error)
raise RuntimeError("uncaught: " + {CANARY!r})
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
    )
    output = result.stdout + result.stderr
    assert "UnicodeEncodeError" in output and "RuntimeError" in output, output
    for form in canary_forms():
        assert form not in output, output


@pytest.mark.django_db(transaction=True)
def test_three_hanging_servers_hold_three_slots_not_the_worker(demo, hostile):
    # given: a worker run as deployed (the Procfile's pool and concurrency), and
    # three tenants whose servers send one byte every two seconds: each session
    # hangs until its deadline
    queue = f"hang-{uuid.uuid4().hex[:10]}"
    worker = WorkerProcess(queue=queue, **deployed_pool()).start()
    drips = [hostile(drip(2.0)) for _ in range(3)]
    for organization, server in zip(
        ("acme-prod", "acme-dev", "globex-main"), drips, strict=True
    ):
        Organization.objects.filter(slug=organization).update(
            smtp_configuration_enabled=True
        )
        configure(
            demo[organization].partner,
            server.port,
            organization=demo[organization],
        )
    good = SmtpTestServer()
    configure(demo["acme"], good.port)
    try:
        with override_settings(
            CELERY_TASK_DEFAULT_QUEUE=queue,
            CELERY_QUEUE_INTERACTIVE=f"{queue}.interactive",
        ):
            hanging = [
                alert(demo[slug]) for slug in ("acme-prod", "acme-dev", "globex-main")
            ]
            wait_until(lambda: all(s.connections >= 1 for s in drips), timeout=60)
            # when: a person of a fourth tenant (the partner itself) asks for a
            # password reset while the three sessions hang
            asked = time.monotonic()
            reset = send_system_email(
                kind=EmailKind.PASSWORD_RESET,
                to="someone@acme.example",
                context={"link": "https://console.example/r/1", "expires_in": "1 h"},
                partner=demo["acme"],
            )

            def sent() -> bool:
                reset.refresh_from_db()
                return reset.status == EmailStatus.SENT

            wait_until(sent, timeout=30)
            waited = time.monotonic() - asked
            # then: it is delivered within a few seconds, while the three still hang
            for email in hanging:
                email.refresh_from_db()
            assert [e.status for e in hanging] == [EmailStatus.SENDING] * 3
            assert waited < 5, f"the reset waited {waited:.1f} s"
            assert [m.rcpt_tos for m in good.messages] == [["someone@acme.example"]]
            # and: the hanging ones end at their deadline (deferred, not lost)
            for email in hanging:
                settled(email, timeout=60)
                assert email.status == EmailStatus.QUEUED
                assert email.failed_step == "greeting"
    finally:
        worker.stop()
        good.stop()
