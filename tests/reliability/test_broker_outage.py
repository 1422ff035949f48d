"""With the broker down, saving works and emails wait; they go out when it returns."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from celery import Celery
from django.utils import timezone

from core.models import WorkerHeartbeat
from smtp.models import Email, EmailStatus, Security, SmtpConfiguration
from tests.support.redis_server import RedisServer
from tests.support.smtp_servers import Behaviour, SmtpTestServer
from tests.support.worker import (
    WorkerProcess,
    database_url_for_test_db,
    deployed_pool,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs the redis-server program"
)

# What the web side does while the broker is down: save the SMTP page, and
# trigger five system emails. It runs in its own process, like a web server.
WEB_SIDE = """
import django
django.setup()
from django.test import Client
from smtp.models import EmailKind
from smtp.services import send_system_email
from tenants.models import Organization, User

client = Client()
client.force_login(User.objects.get(email="partner-admin@acme.example"))
response = client.post("/ops/smtp/", {
    "action": "save", "host": "127.0.0.1", "port": "%(port)s", "retries": "3",
})
assert response.status_code == 302, response.status_code
organization = Organization.objects.get(slug="acme-prod")
for number in range(5):
    send_system_email(
        kind=EmailKind.ALERT,
        to=f"oncall{number}@acme.example",
        context={"title": f"Alert {number}", "message": "m"},
        organization=organization,
    )
print("saved and queued")
"""


@pytest.mark.django_db(transaction=True)
def test_emails_wait_as_queued_while_the_broker_is_down(demo):
    redis = RedisServer()
    redis.start()
    server = SmtpTestServer()
    queue = f"outage-{uuid.uuid4().hex[:10]}"
    worker = WorkerProcess(
        queue=queue,
        extra_env={"REDIS_URL": redis.url, "SMTP_SWEEP_INTERVAL": "0.5"},
    ).start()
    try:
        # given: the worker runs on this broker
        Celery(broker=redis.url, set_as_current=False).send_task(
            "opsconsole.heartbeat", queue=queue
        )
        wait_until(
            lambda: WorkerHeartbeat.objects.filter(worker__startswith=f"{queue}@"),
            timeout=60,
        )
        # when: the broker stops, and the web side saves and queues emails
        redis.stop()
        started = time.monotonic()
        web = subprocess.run(
            [sys.executable, "-c", WEB_SIDE % {"port": server.port}],
            cwd=ROOT,
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "tests.settings",
                "DATABASE_URL": database_url_for_test_db(),
                "REDIS_URL": redis.url,
                "CELERY_QUEUE": queue,
                "ALLOWED_HOSTS": "testserver",
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert web.returncode == 0, web.stderr[-3000:]
        # Saving and queueing did not hang on the dead broker.
        assert time.monotonic() - started < 15
        # then: saving worked and the emails wait
        assert SmtpConfiguration.objects.get(partner=demo["acme"]).port == server.port
        assert SmtpConfiguration.objects.get().security == Security.NONE
        waiting = list(Email.objects.all())
        assert len(waiting) == 5
        assert {e.status for e in waiting} == {EmailStatus.QUEUED}
        assert all(e.enqueued_at is None for e in waiting)
        time.sleep(2)
        assert server.messages == []
        # when: the broker comes back
        redis.start()
        # then: every email goes out, once
        wait_until(
            lambda: Email.objects.filter(status=EmailStatus.SENT).count() == 5,
            timeout=90,
        )
    finally:
        worker.stop()
        redis.stop()
        server.stop()
    assert sorted(m.message_id for m in server.messages) == sorted(
        e.message_id for e in waiting
    )


# Queues system emails from a process of its own, whose broker is the test's
# Redis server (the test process itself publishes to the suite's broker).
QUEUE_EMAILS = """
import django
django.setup()
from smtp.models import EmailKind
from smtp.services import send_system_email
from tenants.models import Organization

organization = Organization.objects.get(slug="acme-prod")
for number in range(%(first)s, %(first)s + %(count)s):
    send_system_email(
        kind=EmailKind.ALERT,
        to=f"oncall{number}@acme.example",
        context={"title": f"Alert {number}", "message": "m"},
        organization=organization,
    )
"""


def queue_emails(*, redis: RedisServer, queue: str, first: int, count: int) -> None:
    result = subprocess.run(
        [sys.executable, "-c", QUEUE_EMAILS % {"first": first, "count": count}],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": database_url_for_test_db(),
            "REDIS_URL": redis.url,
            "CELERY_QUEUE": queue,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.django_db(transaction=True)
def test_the_worker_survives_losing_the_broker_with_a_task_in_hand(demo):
    redis = RedisServer()
    redis.start()
    # The server holds DATA long enough for Redis to go away under the task.
    server = SmtpTestServer(behaviour=Behaviour(data_delay=6))
    queue = f"survive-{uuid.uuid4().hex[:10]}"
    worker = WorkerProcess(
        queue=queue,
        **deployed_pool(),
        extra_env={
            "REDIS_URL": redis.url,
            "SMTP_TIMEOUT": "30",
            "SMTP_SESSION_DEADLINE": "30",
            "SMTP_SWEEP_INTERVAL": "0.5",
        },
    ).start()
    try:
        SmtpConfiguration.objects.create(
            partner=demo["acme"],
            host="127.0.0.1",
            port=server.port,
            security=Security.NONE,
        )
        # given: the worker holds a task it has not acknowledged (acks_late):
        # its email waits for the server's answer to DATA
        queue_emails(redis=redis, queue=queue, first=0, count=1)
        wait_until(lambda: server.handler.data_calls >= 1, timeout=60)
        pid = worker.process.pid
        # when: Redis stops under it, stays away a while, and comes back
        redis.stop()
        time.sleep(10)
        server.handler.behaviour.data_delay = 0
        redis.start()
        back = timezone.now()
        # and emails are queued after it returned
        queue_emails(redis=redis, queue=queue, first=1, count=5)
        # then: the same worker process sends every one of them
        wait_until(
            lambda: (
                Email.objects.filter(status=EmailStatus.SENT).count() == 6
                or worker.process.poll() is not None
            ),
            timeout=120,
        )
        assert worker.process.poll() is None, worker.log_tail(80)
        assert worker.process.pid == pid
        # and its heartbeats, which /readyz reads, come through again
        wait_until(
            lambda: WorkerHeartbeat.objects.filter(
                worker__startswith=f"{queue}@", seen_at__gt=back
            ),
            timeout=60,
        )
    finally:
        worker.stop()
        redis.stop()
        server.stop()
    # Each email reached the server once.
    emails = Email.objects.all()
    assert {e.status for e in emails} == {EmailStatus.SENT}
    assert sorted(m.message_id for m in server.messages) == sorted(
        e.message_id for e in emails
    )
