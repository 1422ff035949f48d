"""Celery tasks of the SMTP app. Tasks take ids, never objects or passwords."""

from __future__ import annotations

import logging
import threading
import time

from celery import shared_task
from celery.signals import worker_process_shutdown, worker_ready, worker_shutdown
from django.conf import settings
from django.db import close_old_connections
from kombu.exceptions import OperationalError as BrokerError

from smtp.outbox import (
    close_pooled_connections,
    outbox_deliver,
    outbox_deliver_many,
    outbox_sweep,
)
from smtp.services import smtp_config_health_check, smtp_config_health_check_targets

logger = logging.getLogger(__name__)


@shared_task(name="smtp.deliver_email", ignore_result=True)
def deliver_email_task(*, email_id: int) -> None:
    """Claim the email (and a batch of its tenant's) and send it."""
    outbox_deliver(email_id=email_id)


@shared_task(name="smtp.deliver_emails", ignore_result=True)
def deliver_emails_task(*, email_ids: list[int]) -> None:
    """Claim these emails and send them over one connection per configuration."""
    outbox_deliver_many(email_ids=email_ids)


@shared_task(name="smtp.health_check_all", ignore_result=True)
def health_check_all_task() -> None:
    """Beat: check every configuration in use, one task each."""
    for configuration_id in smtp_config_health_check_targets():
        health_check_task.delay(configuration_id=configuration_id)


@shared_task(name="smtp.health_check", ignore_result=True)
def health_check_task(*, configuration_id: int) -> None:
    smtp_config_health_check(configuration_id=configuration_id)


# -- the sweeper: a loop started by each worker --------------------------------

_stop = threading.Event()


def _heartbeat() -> None:
    """Publish a heartbeat this worker consumes: proves broker and consumer work."""
    from core.tasks import heartbeat_task

    try:
        heartbeat_task.apply_async(
            queue=settings.CELERY_TASK_DEFAULT_QUEUE, retry=False
        )
    except (BrokerError, OSError) as error:
        logger.warning("Could not publish the worker heartbeat: %s", error)


def _sweep_forever() -> None:
    last_heartbeat = 0.0
    while True:
        if time.monotonic() - last_heartbeat >= settings.WORKER_HEARTBEAT_INTERVAL:
            _heartbeat()
            last_heartbeat = time.monotonic()
        try:
            outbox_sweep()
        except Exception:
            # The loop must outlive any one failure (a database restart, say).
            logger.exception("Outbox sweep failed; trying again later.")
        finally:
            close_old_connections()
        pause = min(settings.SMTP_SWEEP_INTERVAL, settings.WORKER_HEARTBEAT_INTERVAL)
        if _stop.wait(pause):
            return


@worker_ready.connect
def start_sweeper(**kwargs) -> None:
    """Every worker sweeps: no email depends on a separate beat process."""
    _stop.clear()
    threading.Thread(target=_sweep_forever, name="outbox-sweeper", daemon=True).start()


@worker_shutdown.connect
def stop_sweeper(**kwargs) -> None:
    _stop.set()
    close_pooled_connections()


@worker_process_shutdown.connect
def close_connections(**kwargs) -> None:
    close_pooled_connections()
