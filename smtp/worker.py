"""What every Celery worker process does besides running tasks: sweep the outbox,
prove with heartbeats that it consumes from the broker, and close its pooled SMTP
sessions on shutdown. Connected to Celery's signals by ``SmtpConfig.ready``."""

from __future__ import annotations

import logging
import threading
import time

from celery import current_app
from celery.signals import worker_process_shutdown, worker_ready, worker_shutdown
from django.conf import settings
from django.db import close_old_connections
from kombu.exceptions import OperationalError as BrokerError

from smtp.outbox import close_pooled_connections, outbox_sweep

logger = logging.getLogger(__name__)

# Registered by core.tasks; published by name, as a wire name.
HEARTBEAT_TASK = "opsconsole.heartbeat"

_stop = threading.Event()


def _heartbeat() -> None:
    """Publish a heartbeat this worker consumes: proves broker and consumer work."""
    try:
        current_app.send_task(
            HEARTBEAT_TASK, queue=settings.CELERY_TASK_DEFAULT_QUEUE, retry=False
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


def start_sweeper(**kwargs) -> None:
    """Every worker sweeps: no email depends on a separate beat process."""
    _stop.clear()
    threading.Thread(target=_sweep_forever, name="outbox-sweeper", daemon=True).start()


def stop_sweeper(**kwargs) -> None:
    _stop.set()
    close_pooled_connections()


def close_connections(**kwargs) -> None:
    close_pooled_connections()


def connect_signals() -> None:
    """Run the above in every worker (idempotent: Celery keeps one of each)."""
    worker_ready.connect(start_sweeper, dispatch_uid="smtp.start_sweeper")
    worker_shutdown.connect(stop_sweeper, dispatch_uid="smtp.stop_sweeper")
    worker_process_shutdown.connect(
        close_connections, dispatch_uid="smtp.close_connections"
    )
