"""Tasks of the deployment itself."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from core.models import WorkerHeartbeat


@shared_task(name="opsconsole.heartbeat", ignore_result=True)
def heartbeat_task() -> None:
    """Record that a worker consumed a message from the broker."""
    worker = heartbeat_task.request.hostname or "unknown"
    WorkerHeartbeat.objects.update_or_create(
        worker=worker, defaults={"seen_at": timezone.now()}
    )
