"""/healthz (liveness) and /readyz (database, broker, worker heartbeat)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from core.models import WorkerHeartbeat
from tests.support.worker import wait_until


def test_healthz_answers_without_dependencies(db, settings):
    settings.SECURE_SSL_REDIRECT = True
    # A probe comes to the pod's IP over plain HTTP: no host check, no redirect.
    response = Client().get("/healthz", HTTP_HOST="10.12.0.7:8000")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_503_without_a_recent_worker_heartbeat(settings):
    settings.SECURE_SSL_REDIRECT = True
    response = Client().get("/readyz", HTTP_HOST="10.12.0.7:8000")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is True
    assert body["checks"]["worker"] == {
        "ok": False,
        "error": "no worker has ever reported",
        "ms": body["checks"]["worker"]["ms"],
    }
    WorkerHeartbeat.objects.create(
        worker="old@host", seen_at=timezone.now() - timedelta(minutes=5)
    )
    stale = Client().get("/readyz").json()["checks"]["worker"]
    assert stale["ok"] is False and stale["last_seen_seconds"] >= 299
    assert stale["error"].startswith("no worker heartbeat within 6 s: old@host")
    assert stale["stale"] == [
        {"worker": "old@host", "last_seen_seconds": stale["last_seen_seconds"]}
    ]


@pytest.mark.django_db
def test_readyz_names_a_stale_worker_while_another_one_reports(settings):
    now = timezone.now()
    WorkerHeartbeat.objects.create(worker="fresh@host", seen_at=now)
    WorkerHeartbeat.objects.create(
        worker="stuck@host", seen_at=now - timedelta(minutes=2)
    )
    # A worker silent for hours is a replaced pod, not a stale one.
    WorkerHeartbeat.objects.create(worker="gone@host", seen_at=now - timedelta(days=1))
    response = Client().get("/readyz")
    assert response.status_code == 200, response.content
    check = response.json()["checks"]["worker"]
    assert check["ok"] is True and check["worker"] == "fresh@host"
    assert [s["worker"] for s in check["stale"]] == ["stuck@host"]
    assert check["stale"][0]["last_seen_seconds"] >= 119


def test_readyz_is_200_with_a_running_worker(worker):
    # The worker's own loop publishes heartbeats it then consumes.
    WorkerHeartbeat.objects.all().delete()
    wait_until(WorkerHeartbeat.objects.exists, timeout=60)
    response = Client().get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "ready"


def test_readyz_goes_503_naming_a_worker_that_stopped(worker):
    # given: the session's worker reports
    WorkerHeartbeat.objects.all().delete()
    wait_until(WorkerHeartbeat.objects.exists, timeout=60)
    assert Client().get("/readyz").status_code == 200
    name = WorkerHeartbeat.objects.get().worker
    # when: it stops
    worker.stop()
    try:
        # then: once three heartbeats are missed, /readyz says which worker and
        # how long ago it last reported
        response = wait_until(
            lambda: (answer := Client().get("/readyz")).status_code == 503 and answer,
            timeout=60,
        )
    finally:
        worker.start()  # the rest of the suite shares it
    body = response.json()
    assert body["status"] == "not ready"
    assert body["checks"]["database"]["ok"] and body["checks"]["broker"]["ok"]
    check = body["checks"]["worker"]
    age = check["last_seen_seconds"]
    assert age >= 6
    assert check["error"] == (
        f"no worker heartbeat within 6 s: {name} last reported {age} s ago"
    )
    assert check["stale"] == [{"worker": name, "last_seen_seconds": age}]
