"""Liveness and readiness for load balancers and Kubernetes probes.

``/healthz``: the process answers (no dependencies). ``/readyz``: the database,
the broker and a worker (a heartbeat within three heartbeat intervals) all
answer; workers that stopped reporting are named with the age of their last
heartbeat. Both are served before host validation and HTTPS redirects, because
probes come to the pod's own address over plain HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

# A worker that missed this many heartbeats in a row is stale (a minute with the
# default WORKER_HEARTBEAT_INTERVAL of 20 s).
HEARTBEATS_MISSED = 3
# Stale workers are named for this long; one silent for longer is gone (a
# replaced pod has a new name), not stale.
STALE_WORKERS_NAMED_FOR = timedelta(hours=1)
STALE_WORKERS_NAMED = 10


def _timed(check: Callable[[], dict]) -> dict:
    started = time.perf_counter()
    try:
        result = check()
    except Exception as error:  # a probe reports any failure, whatever it is
        result = {"ok": False, "error": f"{type(error).__name__}: {error}"[:300]}
    result["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def _database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"ok": True}


def _broker() -> dict:
    from opsconsole.celery import app

    with app.connection_for_read() as broker:
        broker.ensure_connection(max_retries=1, timeout=2)
    return {"ok": True}


def _worker() -> dict:
    from core.models import WorkerHeartbeat

    now = timezone.now()
    max_age = timedelta(seconds=HEARTBEATS_MISSED * settings.WORKER_HEARTBEAT_INTERVAL)
    latest = WorkerHeartbeat.objects.order_by("-seen_at").first()
    if latest is None:
        return {"ok": False, "error": "no worker has ever reported"}
    age = _seconds(now - latest.seen_at)
    result: dict = {
        "ok": now - latest.seen_at <= max_age,
        "worker": latest.worker,
        "last_seen_seconds": age,
    }
    if not result["ok"]:
        result["error"] = (
            f"no worker heartbeat within {_seconds(max_age)} s: {latest.worker} "
            f"last reported {age} s ago"
        )
    stale = WorkerHeartbeat.objects.filter(
        seen_at__lt=now - max_age, seen_at__gte=now - STALE_WORKERS_NAMED_FOR
    ).order_by("-seen_at")[:STALE_WORKERS_NAMED]
    if stale:
        result["stale"] = [
            {"worker": beat.worker, "last_seen_seconds": _seconds(now - beat.seen_at)}
            for beat in stale
        ]
    return result


def _seconds(age: timedelta) -> int:
    return int(age.total_seconds())


def readiness() -> tuple[bool, dict]:
    checks = {
        "database": _timed(_database),
        "broker": _timed(_broker),
        "worker": _timed(_worker),
    }
    return all(check["ok"] for check in checks.values()), checks


class HealthCheckMiddleware:
    """Answers /healthz and /readyz first; everything else passes through."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == "/healthz":
            return JsonResponse({"status": "ok"})
        if request.path == "/readyz":
            ready, checks = readiness()
            return JsonResponse(
                {"status": "ready" if ready else "not ready", "checks": checks},
                status=200 if ready else 503,
            )
        return self.get_response(request)
