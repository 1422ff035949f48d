"""Celery tasks of the SMTP app. Tasks take ids, never objects or passwords."""

from __future__ import annotations

import logging
import threading

from celery import shared_task
from celery.signals import worker_process_shutdown, worker_ready, worker_shutdown
from django.conf import settings
from django.db import close_old_connections

from smtp.outbox import close_pooled_connections, outbox_deliver, outbox_sweep

logger = logging.getLogger(__name__)


@shared_task(name="smtp.deliver_email", ignore_result=True)
def deliver_email_task(*, email_id: int) -> None:
    """Claim the email (and a batch of its tenant's) and send it."""
    outbox_deliver(email_id=email_id)


# -- the sweeper: a loop started by each worker --------------------------------

_stop = threading.Event()


def _sweep_forever() -> None:
    while True:
        try:
            outbox_sweep()
        except Exception:
            logger.exception("Outbox sweep failed; trying again later.")
        finally:
            close_old_connections()
        if _stop.wait(settings.SMTP_SWEEP_INTERVAL):
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
