"""WSGI entry point (gunicorn opsconsole.wsgi)."""

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsconsole.settings")

application = get_wsgi_application()


def freeze_startup_objects() -> None:
    """Load every view, then leave what exists now out of the garbage
    collector's full collections (``gc.freeze``).

    A web process holds about 130,000 objects from starting (modules, classes,
    functions, the URLconf), none of them ever garbage. Each full collection
    walked them all: a pause of about 0.1 s for whichever requests were being
    served, every few tens of thousands of requests. Frozen, a full collection
    walks only what requests have left behind. For gunicorn's workers, after
    each has loaded the application (``post_worker_init`` in gunicorn.conf.py).
    """
    from django.urls import get_resolver

    # Django imports the URLconf, and with it every view, at the first request.
    get_resolver().url_patterns  # noqa: B018
    gc.collect()
    gc.freeze()
