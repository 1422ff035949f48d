"""Liveness and readiness for load balancers and Kubernetes probes.

``/healthz``: the process answers (no dependencies). ``/readyz``: the database,
the broker and a worker (a heartbeat within the last minute) all answer. Both
are served before host validation and HTTPS redirects, because probes come to
the pod's own address over plain HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

WORKER_HEARTBEAT_MAX_AGE = timedelta(seconds=60)


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
    from opsconsole.models import WorkerHeartbeat

    latest = WorkerHeartbeat.objects.order_by("-seen_at").first()
    if latest is None:
        return {"ok": False, "error": "no worker has ever reported"}
    age = timezone.now() - latest.seen_at
    return {
        "ok": age <= WORKER_HEARTBEAT_MAX_AGE,
        "last_seen_seconds": int(age.total_seconds()),
    }


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
