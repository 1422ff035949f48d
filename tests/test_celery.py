"""A task goes through the configured broker to a real worker process and back."""

from __future__ import annotations

from django.conf import settings

from core.models import WorkerHeartbeat
from core.tasks import heartbeat_task
from opsconsole.celery import app as celery_app
from tests.support.worker import wait_until


def test_a_task_round_trips_through_the_broker_to_a_real_worker(worker):
    # given: a worker process (not eager mode) consuming this session's queue
    assert not celery_app.conf.task_always_eager
    WorkerHeartbeat.objects.all().delete()
    # when
    heartbeat_task.delay()
    # then: the worker process wrote the row
    beat = wait_until(WorkerHeartbeat.objects.first, timeout=30)
    assert beat.worker.startswith(f"{settings.CELERY_TASK_DEFAULT_QUEUE}@")
