"""Fixtures shared by the whole suite."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import Client

from core.env import CONTROLLER_SMTP_VARIABLES
from tenants.models import Organization, Partner, User
from tests.support.hostile import HostileServer
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
def no_shared_worker():
    """The suite's shared worker (when an earlier test started it) paused for a
    test that runs workers of its own: its sweeper shares the test database and
    would rightly hand out that test's emails through its own broker."""
    paused = list(_shared_workers)
    for worker in paused:
        worker.pause()
    yield
    for worker in paused:
        worker.resume()


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
