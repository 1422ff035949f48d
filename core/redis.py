"""One Redis client per process, for state every process shares (``REDIS_URL``).

``None`` without ``REDIS_URL`` (development on the embedded broker): each caller
says what it does then. Every command has a timeout; a Redis that is down raises
``redis.RedisError`` and each caller knows its fallback.
"""

from __future__ import annotations

import os
import threading

import redis
from django.conf import settings

TIMEOUT = 2.0

_lock = threading.Lock()
# By timeout: this process's client for REDIS_URL, and the process and URL it
# was made for.
_clients: dict[float, tuple[int, str, redis.Redis]] = {}


def shared_redis(timeout: float = TIMEOUT) -> redis.Redis | None:
    """This process's client for ``REDIS_URL`` whose commands wait at most
    ``timeout`` seconds (a new one after a fork, or a changed URL)."""
    url = settings.REDIS_URL
    if not url:
        return None
    with _lock:
        made = _clients.get(timeout)
        if made is None or made[:2] != (os.getpid(), url):
            client = redis.Redis.from_url(
                url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                health_check_interval=30,
            )
            made = _clients[timeout] = (os.getpid(), url, client)
        return made[2]
