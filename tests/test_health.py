"""/healthz (liveness) and /readyz (database, broker, worker heartbeat)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from opsconsole.models import WorkerHeartbeat
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


def test_readyz_is_200_with_a_running_worker(worker):
    # The worker's own loop publishes heartbeats it then consumes.
    WorkerHeartbeat.objects.all().delete()
    wait_until(WorkerHeartbeat.objects.exists, timeout=60)
    response = Client().get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "ready"
