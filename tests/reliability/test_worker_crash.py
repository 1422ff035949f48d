"""A worker killed mid-batch loses nothing: every email is sent once, or once more."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from smtp.models import Email, EmailKind, EmailStatus, Security, SmtpConfiguration
from smtp.outbox import RECORD_EVERY
from smtp.services import send_system_email
from tests.support.smtp_servers import Behaviour, SmtpTestServer
from tests.support.worker import WorkerProcess, wait_until

EMAILS = 120
THREADS = 4

# Short leases and sweeps, so that the restarted worker takes over in seconds.
CRASH_ENV = {
    "SMTP_LEASE_SECONDS": "3",
    "SMTP_SESSION_DEADLINE": "0.75",
    "SMTP_SWEEP_INTERVAL": "0.5",
    "SMTP_REQUEUE_AFTER_SECONDS": "2",
    "SMTP_BATCH_SIZE": "20",
}


@pytest.mark.django_db(transaction=True)
def test_sigkill_mid_batch_then_restart_sends_everything(demo, settings):
    queue = f"crash-{uuid.uuid4().hex[:10]}"
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    server = SmtpTestServer(behaviour=Behaviour(data_delay=0.02))
    first = second = None
    try:
        SmtpConfiguration.objects.create(
            partner=demo["acme"],
            host="127.0.0.1",
            port=server.port,
            security=Security.NONE,
        )
        emails = [
            send_system_email(
                kind=EmailKind.ALERT,
                to=f"oncall{number}@acme.example",
                context={"title": f"Alert {number}", "message": "m"},
                organization=demo["acme-prod"],
            )
            for number in range(EMAILS)
        ]
        first = WorkerProcess(queue=queue, extra_env=CRASH_ENV).start()
        wait_until(lambda: len(server.messages) >= 15, timeout=60)
        # when: the worker dies in the middle of its batches
        first.kill()
        at_kill = len(server.messages)
        assert at_kill < EMAILS, "the batch finished before the kill"
        assert Email.objects.exclude(status=EmailStatus.SENT).exists()
        # and a worker comes back
        second = WorkerProcess(queue=queue, extra_env=CRASH_ENV).start()
        wait_until(
            lambda: Email.objects.filter(status=EmailStatus.SENT).count() == EMAILS,
            timeout=120,
        )
    finally:
        for worker in (first, second):
            if worker is not None:
                worker.stop()
        server.stop()
    # then: every email reached the server once, or at most once more (sent but
    # not yet recorded when the worker died), and none is left behind
    counts = Counter(message.message_id for message in server.messages)
    assert set(counts) == {email.message_id for email in emails}
    assert max(counts.values()) <= 2
    assert sum(1 for n in counts.values() if n == 2) <= THREADS * RECORD_EVERY
    assert Email.objects.filter(status=EmailStatus.SENT).count() == EMAILS
