"""The database goes away in the middle of a batch: the worker stops sending what
it could not record, and at most the one email whose result was lost is sent
twice."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.db import connection

from audit.models import AuditEvent
from smtp.models import (
    Email,
    EmailAttempt,
    EmailKind,
    EmailStatus,
    Security,
    SmtpConfiguration,
)
from smtp.services import SystemEmail, send_system_emails
from tests.support.proxy import TcpProxy
from tests.support.smtp_servers import Behaviour, SmtpTestServer
from tests.support.worker import WorkerProcess, database_url_for_test_db, wait_until

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the worker reaches PostgreSQL over TCP"
)

OUTAGE_ENV = {
    "SMTP_LEASE_SECONDS": "3",
    "SMTP_SESSION_DEADLINE": "0.75",
    "SMTP_SWEEP_INTERVAL": "0.5",
    "SMTP_REQUEUE_AFTER_SECONDS": "2",
    "SMTP_BATCH_SIZE": "100",
}


def through(proxy: TcpProxy) -> str:
    """The test database's URL, by way of the proxy."""
    parts = urlsplit(database_url_for_test_db())
    user = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{proxy.port}"))


@pytest.mark.django_db(transaction=True)
def test_a_database_outage_mid_batch_sends_at_most_one_email_twice(demo, settings):
    settings.SMTP_BATCH_SIZE = 100
    queue = f"dbdown-{uuid.uuid4().hex[:10]}"
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    db = connection.settings_dict
    proxy = TcpProxy(db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432))
    server = SmtpTestServer(behaviour=Behaviour(data_delay=0.02))
    worker = WorkerProcess(
        queue=queue,
        concurrency=1,
        extra_env={**OUTAGE_ENV, "DATABASE_URL": through(proxy)},
    )
    try:
        SmtpConfiguration.objects.create(
            partner=demo["acme"],
            host="127.0.0.1",
            port=server.port,
            security=Security.NONE,
        )
        worker.start()
        # given: one batch of 100 going out through one worker thread
        emails = send_system_emails(
            [
                SystemEmail(
                    EmailKind.ALERT,
                    f"oncall{number}@acme.example",
                    {"title": f"Alert {number}", "message": "m"},
                    organization=demo["acme-prod"],
                )
                for number in range(100)
            ]
        )
        wait_until(lambda: len(server.messages) >= 25, timeout=60)
        # when: the worker loses the database for two seconds
        proxy.cut()
        at_cut = len(server.messages)
        time.sleep(2)
        # then: it sent nothing it could not record, beyond the email in flight
        assert len(server.messages) <= at_cut + 1
        proxy.restore()
        # and, back, everything goes out
        wait_until(
            lambda: Email.objects.filter(status=EmailStatus.SENT).count() == 100,
            timeout=120,
        )
    finally:
        worker.stop()
        server.stop()
        proxy.stop()
    assert at_cut < 100, "the batch finished before the outage"
    counts = Counter(message.message_id for message in server.messages)
    assert set(counts) == {email.message_id for email in emails}
    assert sum(1 for n in counts.values() if n > 1) <= 1
    assert max(counts.values()) <= 2
    # and each email has its one successful attempt and email.sent event
    ids = sorted(e.pk for e in emails)
    assert (
        sorted(EmailAttempt.objects.filter(ok=True).values_list("email", flat=True))
        == ids
    )
    assert (
        sorted(
            AuditEvent.objects.filter(type="email.sent").values_list(
                "detail__email_id", flat=True
            )
        )
        == ids
    )
