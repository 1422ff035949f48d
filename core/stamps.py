"""Copies of rarely changed rows, kept by each process and checked with one GET.

A stamp is a token in Redis under a key that names what it covers (say, a
partner's email settings). The services that change those rows renew the stamp
after their transaction commits; a reader keeps its copy together with the stamp
it was read under, and uses the copy while the stamp is still the same. So a
change is seen by every process on its next read, and an unchanged copy costs
one Redis round trip instead of the queries.

A stamp is read before the rows, so a copy read while a change was committing
carries the older stamp and is read again. Copies are also dropped after
``MAX_AGE`` seconds, which bounds how long a copy can outlive a change whose
renewal was lost (Redis down at that moment, or the process ending between the
commit and the renewal).

Without ``REDIS_URL``, and for ``DOWN_PAUSE`` seconds after Redis failed, there
are no copies: every read goes to the database.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Hashable
from functools import partial
from typing import TypeVar

import redis
from django.db import transaction

from core.redis import shared_redis

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A stamp read waits at most this long: a slow Redis costs a read this much once,
# then the copies are skipped for DOWN_PAUSE seconds.
TIMEOUT = 0.25
DOWN_PAUSE = 5.0
MAX_AGE = 300.0
# Copies kept per process; past this many, all are dropped and read again.
MAX_COPIES = 10_000
PREFIX = "stamp:"

_copies: dict[Hashable, tuple[str, float, object]] = {}
_down_until = 0.0
_lock = threading.Lock()


def partner_stamp(partner_id: int) -> str:
    """The stamp of a partner's and its organizations' settings."""
    return f"partner:{partner_id}"


def _client() -> redis.Redis | None:
    if time.monotonic() < _down_until:
        return None
    return shared_redis(TIMEOUT)


def _failed(error: Exception) -> None:
    global _down_until
    _down_until = time.monotonic() + DOWN_PAUSE
    logger.warning("Stamps skipped for %.0f s (Redis: %s).", DOWN_PAUSE, error)


def stamp_current(name: str) -> str | None:
    """The stamp of ``name`` (made now if it has none); None without Redis."""
    client = _client()
    if client is None:
        return None
    key = PREFIX + name
    try:
        stamp = client.get(key)
        if stamp is None:
            client.set(key, uuid.uuid4().hex, nx=True)
            stamp = client.get(key)
    except redis.RedisError as error:
        _failed(error)
        return None
    return stamp.decode() if stamp is not None else None


def stamp_renew(name: str) -> None:
    """Give ``name`` a new stamp: every copy read under the old one is read again."""
    client = shared_redis(TIMEOUT)
    if client is None:
        return
    try:
        client.set(PREFIX + name, uuid.uuid4().hex)
    except redis.RedisError as error:
        # The copies are read again when they reach MAX_AGE.
        logger.warning("Stamp %s not renewed (Redis: %s).", name, error)


def stamp_renew_on_commit(name: str) -> None:
    """Renew ``name``'s stamp once the current transaction commits."""
    transaction.on_commit(partial(stamp_renew, name))


def stamped_copy(name: str, key: Hashable, read: Callable[[], T]) -> T:
    """This process's copy of ``read()`` for ``key``, while ``name``'s stamp is
    the one it was read under; ``read()`` itself without Redis."""
    stamp = stamp_current(name)
    if stamp is None:
        return read()
    now = time.monotonic()
    held = _copies.get(key)
    if held is not None and held[0] == stamp and held[1] > now:
        return held[2]  # type: ignore[return-value]
    value = read()
    with _lock:
        if len(_copies) >= MAX_COPIES:
            _copies.clear()
        _copies[key] = (stamp, now + MAX_AGE, value)
    return value


def stamped_copies_clear() -> None:
    """Drop every copy of this process (tests start from none)."""
    global _down_until
    with _lock:
        _copies.clear()
    _down_until = 0.0
