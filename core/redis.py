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
_client: tuple[int, str, redis.Redis] | None = None


def shared_redis() -> redis.Redis | None:
    """This process's client for ``REDIS_URL`` (a new one after a fork)."""
    global _client
    url = settings.REDIS_URL
    if not url:
        return None
    with _lock:
        if _client is None or _client[:2] != (os.getpid(), url):
            client = redis.Redis.from_url(
                url,
                socket_timeout=TIMEOUT,
                socket_connect_timeout=TIMEOUT,
                health_check_interval=30,
            )
            _client = (os.getpid(), url, client)
        return _client[2]
