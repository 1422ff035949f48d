"""gunicorn settings for the web server (`gunicorn opsconsole.wsgi:application`)."""

import multiprocessing

from core.env import env

bind = env.str("GUNICORN_BIND", default="0.0.0.0:8000")
workers = env.int("WEB_CONCURRENCY", default=multiprocessing.cpu_count() * 2 + 1)
threads = env.int("GUNICORN_THREADS", default=2)
# Well above the verification API's longest wait (API_WAIT_MAX_SECONDS, 10 s).
timeout = env.int("GUNICORN_TIMEOUT", default=60)
graceful_timeout = 30
keepalive = 5
accesslog = "-"
errorlog = "-"
# The TLS-terminating proxy in front sets X-Forwarded-Proto.
forwarded_allow_ips = env.str("FORWARDED_ALLOW_IPS", default="*")


def post_worker_init(worker) -> None:
    """Each worker, once it has loaded the application (opsconsole/wsgi.py)."""
    from opsconsole.wsgi import freeze_startup_objects

    freeze_startup_objects()
