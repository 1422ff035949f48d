"""The Celery application; configuration comes from Django settings (CELERY_*)."""

import gc
import os

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_ready
from django.db import close_old_connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsconsole.settings")

app = Celery("opsconsole")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def close_old_database_connections(sender=None, **_kwargs) -> None:
    """Around every task, as Django does around a request: this thread's
    database connections are closed if an error left them unusable or they are
    older than ``CONN_MAX_AGE``, and checked before reuse (``CONN_HEALTH_CHECKS``).
    Not for a task run eagerly, inside its caller's transaction."""
    if sender is not None and getattr(sender.request, "is_eager", False):
        return
    close_old_connections()


@worker_ready.connect
def freeze_startup_objects(**_kwargs) -> None:
    """Once the worker has loaded its tasks: leave what exists now out of the
    garbage collector's full collections (``gc.freeze``). A worker holds about
    120,000 objects from starting, none of them ever garbage; each full
    collection walked them all, about 50 ms in which none of its threads
    sends (as for the web processes: ``opsconsole.wsgi``)."""
    gc.collect()
    gc.freeze()
