"""Delivery limits of a configuration, shared by every worker and process.

Keyed by ``SmtpServer.limit_key``:

- **Messages per minute**: a sliding-window log. A message is admitted only if
  fewer than N messages of the configuration are in the log within the last
  window (``SMTP_RATE_WINDOW_SECONDS``). While it is being sent its entry is
  stamped with the latest time it could reach the server; once the server
  answered, with that time. A message reaches the server before its entry's
  stamp and after it was admitted, so no window at the server ever holds more
  than N.
- **Concurrent connections**: a slot is taken before a session is opened and
  given back when it is closed; a slot is a lease (``SMTP_CONNECTION_LEASE_SECONDS``)
  renewed while the session is used, so the slots of a killed worker expire.
- **Pause**: a throttling reply pauses the configuration for every worker
  (``SMTP_THROTTLE_PAUSE_SECONDS``, doubled for a server that throttles again
  right after a pause).

In Redis when ``REDIS_URL`` is set: one Lua script per decision, on Redis's
clock. In the database otherwise (``DeliveryLimit`` rows, locked while a worker
decides). A Redis that cannot be reached costs no email: the database decides
for that call, and it is logged.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.db import IntegrityError, transaction

from smtp.delivery.server import SmtpServer
from smtp.models import DeliveryLimit, DeliveryLimitEntry

logger = logging.getLogger(__name__)

# The longest a worker waits for a limit in place; beyond it the email goes back
# to the queue, so that no worker slot is held waiting.
LONGEST_WAIT = 1.0
# Redis answers within this, or the database decides.
REDIS_TIMEOUT = 0.5
# Redis failures are logged at most this often (seconds).
LOG_EVERY = 30.0

T = TypeVar("T")


class LimitReached(Exception):
    """A limit of the configuration holds this email back for ``wait`` seconds."""

    def __init__(self, wait: float, *, reason: str):
        super().__init__(f"held by the {reason} limit for {wait:.1f} s")
        self.wait = wait
        self.reason = reason


@dataclass(frozen=True)
class Admission:
    """A message's turn: ``wait`` 0 if admitted (its entry is ``token``), else
    the seconds until the configuration may send again, and why."""

    wait: float
    token: str = ""
    reason: str = ""

    @property
    def admitted(self) -> bool:
        return self.wait <= 0


def _window() -> float:
    return float(settings.SMTP_RATE_WINDOW_SECONDS)


def _provisional() -> float:
    """Seconds from admission by which a message has surely reached the server
    or failed: a session's deadline for a reused session, and again for the
    fresh one it may fall back to."""
    return 2 * float(settings.SMTP_SESSION_DEADLINE)


def lease_seconds() -> float:
    return float(settings.SMTP_CONNECTION_LEASE_SECONDS)


# -- Redis ---------------------------------------------------------------------

# KEYS: the message log, the pause. ARGV: limit, window, token, provisional
# seconds, check (1: hold if over; 0: count only). Returns {admitted, wait}.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local check = ARGV[5] == '1'
if check then
  local paused = tonumber(redis.call('HGET', KEYS[2], 'until') or '0')
  if paused > now then return {0, tostring(paused - now), 'paused'} end
end
local limit = tonumber(ARGV[1])
if limit == 0 then return {1, '0', ''} end
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if check and count >= limit then
  local turn = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
  return {0, tostring(tonumber(turn[2]) + window - now), 'rate'}
end
local provisional = tonumber(ARGV[4])
redis.call('ZADD', KEYS[1], now + provisional, ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil((window + provisional) * 1000) + 1000)
return {1, '0', ''}
"""

# KEYS: the message log. ARGV: token. The message reached the server by now.
_SENT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZADD', KEYS[1], 'XX', now, ARGV[1])
return 1
"""

# KEYS: the connection slots. ARGV: limit, lease, token, check. Returns 1 if
# the slot is taken.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[4] == '1' and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + lease, ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(lease * 1000) + 1000)
return 1
"""

# KEYS: the connection slots. ARGV: lease, token.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local lease = tonumber(ARGV[1])
redis.call('ZADD', KEYS[1], 'XX', now + lease, ARGV[2])
redis.call('PEXPIRE', KEYS[1], math.ceil(lease * 1000) + 1000)
return 1
"""

# KEYS: the pause. ARGV: first pause, longest pause. Returns the seconds left.
# Throttling replies during a pause (other sessions of the same moment) do not
# lengthen it; one soon after a pause ended doubles the next.
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local base = tonumber(ARGV[1])
local longest = tonumber(ARGV[2])
local paused = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if paused > now then return tostring(paused - now) end
local streak = tonumber(redis.call('HGET', KEYS[1], 'streak') or '0')
local pause = math.min(longest, base * 2 ^ streak)
if paused > 0 and now - paused < 2 * pause then
  streak = streak + 1
else
  streak = 0
end
pause = math.min(longest, base * 2 ^ streak)
redis.call('HSET', KEYS[1], 'until', tostring(now + pause), 'streak', streak)
redis.call('PEXPIRE', KEYS[1], math.ceil((pause * 3 + longest) * 1000))
return tostring(pause)
"""


class _Redis:
    """One client per process (a forked worker makes its own), with timeouts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = 0
        self._url = ""
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self._logged_at = -math.inf

    def client(self) -> Any | None:
        url = settings.REDIS_URL
        if not url:
            return None
        with self._lock:
            if self._client is None or self._pid != os.getpid() or self._url != url:
                import redis

                self._client = redis.Redis.from_url(
                    url,
                    socket_timeout=REDIS_TIMEOUT,
                    socket_connect_timeout=REDIS_TIMEOUT,
                    health_check_interval=30,
                )
                self._scripts = {}
                self._pid, self._url = os.getpid(), url
            return self._client

    def script(self, name: str, source: str) -> Any:
        client = self.client()
        if name not in self._scripts:
            self._scripts[name] = client.register_script(source)
        return self._scripts[name]

    def failed(self, error: Exception) -> None:
        now = time.monotonic()
        if now - self._logged_at > LOG_EVERY:
            self._logged_at = now
            logger.warning(
                "Redis is unreachable for delivery limits (%s); the database "
                "decides meanwhile.",
                type(error).__name__,
            )


_redis = _Redis()


def _key(server: SmtpServer, what: str) -> str:
    # One hash tag per configuration: its keys stay on one Redis Cluster node.
    return f"opsconsole:limits:{{{server.limit_key}}}:{what}"


def _decide(in_redis: Callable[[], T] | None, in_database: Callable[[], T]) -> T:
    """In Redis if it is configured and answers, else in the database."""
    if in_redis is not None and settings.REDIS_URL:
        import redis

        try:
            return in_redis()
        except (redis.RedisError, OSError) as error:
            _redis.failed(error)
    return in_database()


# -- the database ------------------------------------------------------------


@contextmanager
def _locked(key: str) -> Iterator[float]:
    """Hold the row of ``key`` (created if need be) for one decision; yields now
    (Unix time)."""
    with transaction.atomic():
        now = time.time()
        # An UPDATE first: it takes the lock at once (a row lock in PostgreSQL,
        # the write lock in SQLite).
        if not DeliveryLimit.objects.filter(key=key).update(touched=now):
            try:
                with transaction.atomic():
                    DeliveryLimit.objects.create(key=key, touched=now)
            except IntegrityError:
                # Created meanwhile by another worker: wait for its lock.
                DeliveryLimit.objects.filter(key=key).update(touched=now)
        yield time.time()


def _entries(key: str, kind: str):
    return DeliveryLimitEntry.objects.filter(limit_id=key, kind=kind)


def _admit_in_database(
    server: SmtpServer, token: str, *, hold: bool
) -> tuple[bool, float, str]:
    key, limit, window = server.limit_key, server.messages_per_minute, _window()
    with _locked(key) as now:
        if hold:
            paused = (
                DeliveryLimit.objects.filter(key=key)
                .values_list("paused_until", flat=True)
                .first()
                or 0
            )
            if paused > now:
                return False, paused - now, "paused"
        if not limit:
            return True, 0.0, ""
        entries = _entries(key, DeliveryLimitEntry.Kind.MESSAGE)
        entries.filter(stamp__lte=now - window).delete()
        stamps = list(entries.order_by("stamp").values_list("stamp", flat=True))
        if hold and len(stamps) >= limit:
            return False, stamps[len(stamps) - limit] + window - now, "rate"
        DeliveryLimitEntry.objects.create(
            limit_id=key,
            kind=DeliveryLimitEntry.Kind.MESSAGE,
            token=token,
            stamp=now + _provisional(),
        )
        return True, 0.0, ""


def _take_in_database(server: SmtpServer, token: str, *, hold: bool) -> bool:
    key = server.limit_key
    with _locked(key) as now:
        slots = _entries(key, DeliveryLimitEntry.Kind.CONNECTION)
        slots.filter(stamp__lte=now).delete()
        if hold and slots.count() >= server.max_connections:
            return False
        DeliveryLimitEntry.objects.create(
            limit_id=key,
            kind=DeliveryLimitEntry.Kind.CONNECTION,
            token=token,
            stamp=now + lease_seconds(),
        )
        return True


def _pause_in_database(server: SmtpServer) -> float:
    base = float(settings.SMTP_THROTTLE_PAUSE_SECONDS)
    longest = float(settings.SMTP_THROTTLE_MAX_PAUSE_SECONDS)
    with _locked(server.limit_key) as now:
        row = DeliveryLimit.objects.get(key=server.limit_key)
        if row.paused_until > now:
            return row.paused_until - now
        pause = min(longest, base * 2**row.streak)
        if row.paused_until > 0 and now - row.paused_until < 2 * pause:
            row.streak += 1
        else:
            row.streak = 0
        pause = min(longest, base * 2**row.streak)
        row.paused_until = now + pause
        row.save(update_fields=["paused_until", "streak"])
        return pause


# -- messages per minute -------------------------------------------------------


def message_admit(server: SmtpServer, *, hold: bool = True) -> Admission:
    """Count one message against the configuration's limits now, or say how long
    to wait (a pause after throttling, or the rate). ``hold=False`` counts it
    whatever the limits say (an email a person waits for)."""
    token = uuid.uuid4().hex
    limit = server.messages_per_minute

    def in_redis() -> tuple[bool, float, str]:
        admitted, wait, reason = _redis.script("admit", _ADMIT)(
            keys=[_key(server, "sent"), _key(server, "pause")],
            args=[limit, _window(), token, _provisional(), int(hold)],
        )
        return bool(admitted), float(wait), (reason or b"").decode()

    admitted, wait, reason = _decide(
        in_redis, lambda: _admit_in_database(server, token, hold=hold)
    )
    if admitted:
        return Admission(wait=0.0, token=token if limit else "")
    return Admission(wait=max(wait, 0.001), reason=reason)


def message_sent(server: SmtpServer, token: str) -> None:
    """The admitted message ``token`` reached the server (or failed) by now."""
    if not token:
        return

    def in_redis() -> None:
        _redis.script("sent", _SENT)(keys=[_key(server, "sent")], args=[token])

    def in_database() -> None:
        DeliveryLimitEntry.objects.filter(token=token).update(stamp=time.time())

    _decide(in_redis, in_database)


def message_turn(server: SmtpServer) -> Admission:
    """``message_admit``, waiting up to ``LONGEST_WAIT`` in all for a turn that
    comes soon; a longer wait is returned for the email to go back to the queue."""
    waited = 0.0
    while True:
        admission = message_admit(server)
        if admission.admitted or waited + admission.wait > LONGEST_WAIT:
            return admission
        time.sleep(admission.wait)
        waited += admission.wait


def turns(first_wait: float, count: int, *, per_window: int) -> list[float]:
    """Delays for ``count`` emails held together: the first ``per_window`` at
    ``first_wait``, the next ones a window later each, so that they do not all
    come back at once (0 per window: all at ``first_wait``)."""
    if per_window <= 0:
        return [first_wait] * count
    return [first_wait + (n // per_window) * _window() for n in range(count)]


# -- concurrent connections ------------------------------------------------------


def connection_take(server: SmtpServer, *, hold: bool = True) -> str | None:
    """A connection slot for a new session (its token; "" if the configuration
    has no limit), or None when every slot is in use. ``hold=False`` takes one
    whatever the limit (a session a person waits for)."""
    if not server.max_connections:
        return ""
    token = uuid.uuid4().hex

    def in_redis() -> bool:
        return bool(
            _redis.script("take", _TAKE)(
                keys=[_key(server, "connections")],
                args=[server.max_connections, lease_seconds(), token, int(hold)],
            )
        )

    taken = _decide(in_redis, lambda: _take_in_database(server, token, hold=hold))
    return token if taken else None


def connection_wait(server: SmtpServer) -> str:
    """A connection slot, waiting up to ``LONGEST_WAIT`` for one to be given
    back; raises ``LimitReached`` if none is."""
    deadline = time.monotonic() + LONGEST_WAIT
    pause = 0.05
    while True:
        token = connection_take(server)
        if token is not None:
            return token
        if time.monotonic() + pause > deadline:
            # Slots are given back as sessions end: soon, but when is unknown.
            raise LimitReached(LONGEST_WAIT * 2, reason="connections")
        time.sleep(pause)
        pause = min(pause * 2, 0.4)


def connection_renew(server: SmtpServer, token: str) -> None:
    """The session of slot ``token`` is still in use: its lease starts again."""
    if not token:
        return

    def in_redis() -> None:
        _redis.script("renew", _RENEW)(
            keys=[_key(server, "connections")], args=[lease_seconds(), token]
        )

    def in_database() -> None:
        DeliveryLimitEntry.objects.filter(token=token).update(
            stamp=time.time() + lease_seconds()
        )

    _decide(in_redis, in_database)


def connection_release(server: SmtpServer, token: str) -> None:
    """The session of slot ``token`` is closed."""
    if not token:
        return

    def in_redis() -> None:
        _redis.client().zrem(_key(server, "connections"), token)

    def in_database() -> None:
        DeliveryLimitEntry.objects.filter(token=token).delete()

    # Given back in both: a slot taken while Redis was away lives in the database.
    try:
        _decide(in_redis, in_database)
    finally:
        if settings.REDIS_URL:
            in_database()


# -- throttling ----------------------------------------------------------------


def throttle_pause(server: SmtpServer) -> float:
    """The server is throttling: pause the configuration for every worker;
    returns the seconds until it may send again."""

    def in_redis() -> float:
        return float(
            _redis.script("pause", _PAUSE)(
                keys=[_key(server, "pause")],
                args=[
                    settings.SMTP_THROTTLE_PAUSE_SECONDS,
                    settings.SMTP_THROTTLE_MAX_PAUSE_SECONDS,
                ],
            )
        )

    return _decide(in_redis, lambda: _pause_in_database(server))


# -- a session a person waits for ------------------------------------------------


@contextmanager
def counted(server: SmtpServer | None) -> Iterator[None]:
    """Around a session that is never held (a test email, a verification): it
    counts against the configuration's limits, so that bulk emails make room for
    it. ``None`` (an unsaved draft's session) counts against nothing."""
    if server is None:
        yield
        return
    admission = message_admit(server, hold=False)
    slot = connection_take(server, hold=False)
    try:
        yield
    finally:
        message_sent(server, admission.token)
        connection_release(server, slot or "")
