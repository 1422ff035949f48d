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

from opsconsole.models import WorkerHeartbeat
from smtp.models import Email, EmailStatus, Security, SmtpConfiguration
from tests.support.smtp_servers import SmtpTestServer, free_port
from tests.support.worker import WorkerProcess, database_url_for_test_db, wait_until

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


class RedisServer:
    """A Redis server of this test's own, on a free port, that it can stop."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        app = Celery(broker=self.url, set_as_current=False)
        wait_until(lambda: self._answers(app), timeout=20)

    @staticmethod
    def _answers(app: Celery) -> bool:
        try:
            with app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1)
        except Exception:  # not up yet
            return False
        return True

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


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
