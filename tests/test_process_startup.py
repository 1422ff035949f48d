"""A gunicorn worker, once it has loaded the application, has every view
loaded and its startup objects left out of full garbage collections
(``opsconsole.wsgi.freeze_startup_objects``); so has a Celery worker once it
is ready (``opsconsole.celery.freeze_startup_objects``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# What gunicorn does in a worker: read its settings, load the application,
# then call the post_worker_init hook.
GUNICORN_WORKER = """
import gc, runpy, sys
hooks = runpy.run_path("gunicorn.conf.py")
import opsconsole.wsgi
views = lambda: "auditlog.apis" in sys.modules
before = (gc.get_freeze_count(), views())
hooks["post_worker_init"](None)
print(*before, gc.get_freeze_count(), len(gc.get_objects()), views())
"""


# What Celery does in a worker: load the application, then tell the receivers
# of worker_ready (here without the outbox sweeper, which needs a broker).
CELERY_WORKER = """
import gc
import django
django.setup()
from celery.signals import worker_ready
from opsconsole.celery import app
from smtp.worker import start_sweeper
app.loader.import_default_modules()
worker_ready.disconnect(start_sweeper, dispatch_uid="smtp.start_sweeper")
before = gc.get_freeze_count()
worker_ready.send(sender=None)
print(before, gc.get_freeze_count(), len(gc.get_objects()))
"""


def _run(script: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split()


def test_a_gunicorn_worker_loads_every_view_and_freezes_what_it_started_with():
    frozen_before, views_before, frozen, tracked, views = _run(GUNICORN_WORKER)
    # Loading the application alone neither loads the views nor freezes.
    assert (frozen_before, views_before) == ("0", "False")
    assert views == "True"
    # A full collection now walks what is left: a small part of it all.
    assert int(frozen) > 50_000
    assert int(tracked) < int(frozen) / 10


def test_a_celery_worker_freezes_what_it_started_with_once_ready():
    frozen_before, frozen, tracked = _run(CELERY_WORKER)
    assert frozen_before == "0"
    assert int(frozen) > 50_000
    assert int(tracked) < int(frozen) / 10
