"""A worker killed mid-batch loses nothing and sends at most one email twice per
thread that was sending; after a Redis restart on top, nothing is stranded."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections import Counter

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from smtp.models import (
    Email,
    EmailAttempt,
    EmailKind,
    EmailStatus,
    Security,
    SmtpConfiguration,
)
from smtp.services import send_system_email
from tests.support.redis_server import RedisServer
from tests.support.smtp_servers import Behaviour, SmtpTestServer
from tests.support.worker import (
    ROOT,
    WorkerProcess,
    database_url_for_test_db,
    wait_until,
)

EMAILS = 120
THREADS = 4
LEASE = 3
SWEEP = 0.5
REQUEUE = 2

# Short leases and sweeps, so that the restarted worker takes over in seconds.
CRASH_ENV = {
    "SMTP_LEASE_SECONDS": str(LEASE),
    "SMTP_SESSION_DEADLINE": "0.75",
    "SMTP_SWEEP_INTERVAL": str(SWEEP),
    "SMTP_REQUEUE_AFTER_SECONDS": str(REQUEUE),
    "SMTP_BATCH_SIZE": "20",
}

needs_redis_server = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs the redis-server program"
)


def configure(demo, server: SmtpTestServer) -> None:
    SmtpConfiguration.objects.create(
        partner=demo["acme"],
        host="127.0.0.1",
        port=server.port,
        security=Security.NONE,
    )


def duplicates(server: SmtpTestServer, emails: list[Email]) -> int:
    """Emails the server received twice; fails if one is missing or came 3 times,
    or if a sent email lacks its one successful attempt and email.sent event."""
    counts = Counter(message.message_id for message in server.messages)
    assert set(counts) == {email.message_id for email in emails}
    assert max(counts.values()) <= 2
    sent = Email.objects.filter(status=EmailStatus.SENT)
    assert Counter(
        EmailAttempt.objects.filter(ok=True).values_list("email_id", flat=True)
    ) == Counter(sent.values_list("pk", flat=True))
    assert Counter(
        AuditEvent.objects.filter(type="email.sent").values_list(
            "detail__email_id", flat=True
        )
    ) == Counter(sent.values_list("pk", flat=True))
    return sum(1 for n in counts.values() if n == 2)


def in_a_django_process(script: str, env: dict[str, str]) -> str:
    """Run ``script`` in a process of its own, set up as web and worker are."""
    done = subprocess.run(
        [sys.executable, "-c", "import django\ndjango.setup()\n" + script],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": database_url_for_test_db(),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


# The web side: emails one call each, then some in one call for many.
ENQUEUE = """
from smtp.models import EmailKind
from smtp.services import SystemEmail, send_system_email, send_system_emails
from tenants.models import Organization

organization = Organization.objects.get(slug="acme-prod")
for number in range(%(single)s):
    send_system_email(
        kind=EmailKind.ALERT,
        to=f"oncall{number}@acme.example",
        context={"title": f"Alert {number}", "message": "m"},
        organization=organization,
    )
send_system_emails([
    SystemEmail(
        EmailKind.ALERT,
        f"team{number}@acme.example",
        {"title": f"Outage {number}", "message": "m"},
        organization=organization,
    )
    for number in range(%(many)s)
])
"""

SWEEP_ONCE = """
from smtp.outbox import outbox_sweep
print(outbox_sweep())
"""


@pytest.mark.django_db(transaction=True)
def test_sigkill_mid_batch_then_restart_sends_everything(demo, settings):
    queue = f"crash-{uuid.uuid4().hex[:10]}"
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    server = SmtpTestServer(behaviour=Behaviour(data_delay=0.02))
    first = second = None
    try:
        configure(demo, server)
        emails = [
            send_system_email(
                kind=EmailKind.ALERT,
                to=f"oncall{number}@acme.example",
                context={"title": f"Alert {number}", "message": "m"},
                organization=demo["acme-prod"],
            )
            for number in range(EMAILS)
        ]
        first = WorkerProcess(
            queue=queue, extra_env=CRASH_ENV, concurrency=THREADS
        ).start()
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
    # then: every email reached the server once, or once more if it was the one
    # a thread was sending when the worker died (accepted, not yet recorded)
    assert duplicates(server, emails) <= THREADS
    assert Email.objects.filter(status=EmailStatus.SENT).count() == EMAILS


@needs_redis_server
@pytest.mark.django_db(transaction=True)
def test_sigkill_during_a_batch_of_100_sends_at_most_one_email_twice(demo, settings):
    # given: one worker thread, one batch of 100, a server slow to accept
    redis = RedisServer()
    redis.start()
    queue = f"crash-{uuid.uuid4().hex[:10]}"
    env = {**CRASH_ENV, "SMTP_BATCH_SIZE": "100", "REDIS_URL": redis.url}
    server = SmtpTestServer(behaviour=Behaviour(data_delay=0.02))
    first = second = None
    try:
        configure(demo, server)
        first = WorkerProcess(queue=queue, extra_env=env, concurrency=1).start()
        in_a_django_process(
            ENQUEUE % {"single": 0, "many": 100}, {**env, "CELERY_QUEUE": queue}
        )
        emails = list(Email.objects.all())
        wait_until(lambda: len(server.messages) >= 30, timeout=60)
        # when: the worker is killed in the middle of the batch, and comes back
        first.kill()
        assert len(server.messages) < 100, "the batch finished before the kill"
        second = WorkerProcess(queue=queue, extra_env=env, concurrency=1).start()
        wait_until(
            lambda: Email.objects.filter(status=EmailStatus.SENT).count() == 100,
            timeout=120,
        )
    finally:
        for worker in (first, second):
            if worker is not None:
                worker.stop()
        server.stop()
        redis.stop()
    # then: only the email in flight when it died can have been sent twice
    assert len(emails) == 100
    assert duplicates(server, emails) <= 1


@needs_redis_server
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_then_a_redis_restart_strands_no_email(demo):
    redis = RedisServer()
    redis.start()
    queue = f"crash-{uuid.uuid4().hex[:10]}"
    env = {**CRASH_ENV, "REDIS_URL": redis.url, "CELERY_QUEUE": queue}
    server = SmtpTestServer(behaviour=Behaviour(data_delay=0.02))
    first = second = None
    try:
        configure(demo, server)
        in_a_django_process(ENQUEUE % {"single": EMAILS // 2, "many": EMAILS // 2}, env)
        emails = list(Email.objects.all())
        assert len(emails) == EMAILS
        # given: a worker killed while sending
        first = WorkerProcess(queue=queue, extra_env=env, concurrency=THREADS)
        first.start()
        wait_until(lambda: len(server.messages) >= 15, timeout=60)
        first.kill()
        assert len(server.messages) < EMAILS, "everything was sent before the kill"
        held = Email.objects.filter(status=EmailStatus.SENDING)
        assert held.exists()
        # and a sweep once its leases ran out, which hands those emails out again
        wait_until(
            lambda: not held.filter(lease_until__gte=timezone.now()).exists(),
            timeout=LEASE + 30,
        )
        assert int(in_a_django_process(SWEEP_ONCE, env)) > 0
        # when: Redis restarts without persistence before any worker took them
        redis.stop()
        redis.start()
        second = WorkerProcess(queue=queue, extra_env=env, concurrency=THREADS)
        second.start()
        # then: every email ends, within a lease, a sweep and a requeue period
        # (and a generous margin for a loaded machine)
        wait_until(
            lambda: (
                not Email.objects.exclude(
                    status__in=[EmailStatus.SENT, EmailStatus.FAILED]
                ).exists()
            ),
            timeout=LEASE + SWEEP + REQUEUE + 60,
        )
    finally:
        for worker in (first, second):
            if worker is not None:
                worker.stop()
        server.stop()
        redis.stop()
    assert Email.objects.filter(status=EmailStatus.SENT).count() == EMAILS
    assert duplicates(server, emails) <= THREADS
