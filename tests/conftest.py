"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.test import Client

from core.env import CONTROLLER_SMTP_VARIABLES
from core.stamps import stamped_copies_clear
from smtp.delivery import oauth2
from tenants.models import Organization, Partner, User
from tests.support.hostile import HostileServer
from tests.support.oauth2 import TokenServer
from tests.support.smtp_servers import make_certificates
from tests.support.worker import WorkerProcess, wait_until


@pytest.fixture
def demo(db) -> dict[str, object]:
    """The demo tenants and users (``seed_demo``), by slug and email."""
    call_command("seed_demo", "--force", verbosity=0)
    return {
        "acme": Partner.objects.get(slug="acme"),
        "globex": Partner.objects.get(slug="globex"),
        "acme-prod": Organization.objects.get(slug="acme-prod"),
        "acme-dev": Organization.objects.get(slug="acme-dev"),
        "globex-main": Organization.objects.get(slug="globex-main"),
        "acme_admin": User.objects.get(email="partner-admin@acme.example"),
        "globex_admin": User.objects.get(email="partner-admin@globex.example"),
        "prod_admin": User.objects.get(email="org-admin@acme-prod.example"),
        "dev_admin": User.objects.get(email="org-admin@acme-dev.example"),
        "globex_main_admin": User.objects.get(email="org-admin@globex-main.example"),
        "support": User.objects.get(email="support@ops.example"),
    }


@pytest.fixture
def login():
    """``login(user)``: a test client with that user's session."""

    def make(user: User) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker):
    """A real ``celery worker`` process consuming this test session's queue."""
    from django.conf import settings

    worker = WorkerProcess(queue=settings.CELERY_TASK_DEFAULT_QUEUE).start()
    _shared_workers.append(worker)
    yield worker
    _shared_workers.remove(worker)
    worker.stop()


_shared_workers: list[WorkerProcess] = []


@pytest.fixture
def no_shared_worker(transactional_db):
    """The suite's shared worker (when an earlier test started it) paused for a
    test that runs workers of its own: its sweeper shares the test database and
    would rightly hand out that test's emails through its own broker.

    It resumes before the test's tables are emptied (this fixture stands on the
    database's): paused inside a transaction, it would hold a lock the emptying
    waits for."""
    paused = list(_shared_workers)
    for worker in paused:
        worker.pause()
    yield
    for worker in paused:
        worker.resume()


@pytest.fixture
def private_queue(settings):
    """Queues of this test's own that no worker consumes: the broker and the bulk
    lane's name. Whatever the test queued is handed over before they are
    removed, so that nothing reaches the suite's shared worker afterwards (it
    would claim rows while the test's tables are emptied)."""
    import redis

    from smtp.outbox.publish import emails_handed_over

    broker = redis.Redis.from_url(
        os.environ["REDIS_URL"], socket_timeout=5, socket_connect_timeout=5
    )
    queue = settings.CELERY_TASK_DEFAULT_QUEUE = f"private-{uuid.uuid4().hex[:10]}"
    settings.CELERY_QUEUE_INTERACTIVE = f"{queue}.i"
    yield broker, queue
    emails_handed_over()
    broker.delete(queue, f"{queue}.i", *broker.keys(f"smtp:turns:{queue}:*"))
    broker.close()


@pytest.fixture
def worker(celery_worker_process, transactional_db):
    """The session's worker, for a test whose rows it must see (committed data)."""
    from core.models import WorkerHeartbeat
    from core.tasks import heartbeat_task

    # The first task proves the worker consumes this queue before the test starts.
    heartbeat_task.delay()
    try:
        wait_until(WorkerHeartbeat.objects.exists, timeout=60)
    except TimeoutError:
        pytest.fail(
            "the Celery worker did not start:\n" + celery_worker_process.log_tail()
        )
    return celery_worker_process


@pytest.fixture
def hostile():
    """``hostile(script)``: a misbehaving SMTP server (tests/support/hostile.py)."""
    started: list[HostileServer] = []

    def start(script) -> HostileServer:
        server = HostileServer(script)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


CONTROLLER_VARIABLES = CONTROLLER_SMTP_VARIABLES


@pytest.fixture(autouse=True)
def no_stamped_copies():
    """Tests start without this process's copies of other tests' settings (ids of
    rows are reused between tests on SQLite)."""
    stamped_copies_clear()


@pytest.fixture(autouse=True)
def no_controller_smtp(monkeypatch):
    """Tests start without controller SMTP defaults, whatever the shell has."""
    for name in CONTROLLER_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def controller_smtp(monkeypatch):
    """``controller_smtp(ADDR=..., PORT=...)`` sets ``FW_EVENT_SMTP_SERVER_*``."""

    def set_values(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"FW_EVENT_SMTP_SERVER_{name}", value)

    return set_values


@pytest.fixture(scope="session")
def oauth2_endpoint(tmp_path_factory):
    """The suite's HTTPS token endpoint, where SMTP_OAUTH2_* of tests/settings.py
    point: its CA is generated here and written to SMTP_OAUTH2_CA_BUNDLE."""
    from django.conf import settings

    certs = make_certificates(tmp_path_factory.mktemp("oauth2-certs"))
    shutil.copy(certs.ca, Path(settings.SMTP_OAUTH2_CA_BUNDLE))
    port = urlsplit(settings.SMTP_OAUTH2_MICROSOFT_AUTHORITY).port
    server = TokenServer(cert=certs.server, port=port)
    yield server
    server.stop()


@pytest.fixture
def token_server(oauth2_endpoint):
    """The token endpoint with no clients, no tokens and no requests yet; this
    process's token cache empty."""
    oauth2_endpoint.reset()
    oauth2.cache.clear()
    yield oauth2_endpoint
    oauth2_endpoint.reset()
    oauth2.cache.clear()
