"""Handing a task to the broker by its name: the one way the apps publish.

By name, so that a module that publishes never imports the module that defines
the task (tasks sit on the top floor of each app). A broker that is down is not
an error for the caller: ``publish`` answers False at once (after two quick
reconnects for a stale pooled connection), and each caller knows how the work is
caught up later (the outbox's sweeper, a reindex, the person asking again).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app
from django.conf import settings
from kombu.exceptions import OperationalError as BrokerError

logger = logging.getLogger(__name__)

RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.1,
    "interval_max": 0.2,
}


def publish(
    task: str,
    *,
    kwargs: dict[str, Any] | None = None,
    countdown: float = 0,
    retry: bool = True,
    queue: str = "",
) -> bool:
    """Send the task named ``task`` to ``queue`` (default: this deployment's
    queue); False if the broker cannot take it (logged, without the arguments)."""
    try:
        current_app.send_task(
            task,
            kwargs=kwargs or {},
            countdown=countdown or None,
            queue=queue or settings.CELERY_TASK_DEFAULT_QUEUE,
            retry=retry,
            retry_policy=RETRY_POLICY,
        )
    except (BrokerError, OSError) as error:
        logger.warning("Broker unavailable; %s not queued: %s", task, error)
        return False
    return True
