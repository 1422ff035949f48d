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
  right after a pause). A batch of a configuration without a rate limit asks
  for the pause at most every ``PAUSE_CHECK_EVERY`` seconds per process (not
  once per message); a pause this process started is known at once.

In Redis when ``REDIS_URL`` is set: one Lua script per decision, on Redis's
clock. In the database otherwise (``DeliveryLimit`` rows, locked while a worker
decides). A Redis that cannot be reached costs no email: the database decides
for that call, and it is logged.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings

from smtp.delivery.server import SmtpServer
from smtp.outbox.limits import in_database, in_redis
from smtp.outbox.limits.in_redis import decide, key, quietly
from smtp.outbox.limits.periods import lease_seconds, provisional, window

__all__ = [
    "LONGEST_WAIT",
    "Admission",
    "LimitReached",
    "connection_release",
    "connection_renew",
    "connection_take",
    "connection_wait",
    "counted",
    "lease_seconds",
    "message_admit",
    "message_sent",
    "message_turn",
    "message_unused",
    "throttle_pause",
    "turns",
]

# The longest a worker waits for a limit in place; beyond it the email goes back
# to the queue, so that no worker slot is held waiting.
LONGEST_WAIT = 1.0
# Tokens of entries the database decided (Redis was away) start with this: an
# entry is stamped, renewed and removed where it was made.
IN_DATABASE = "db:"
# Seconds a process goes by what it last learnt of a configuration's pause
# when the configuration has no rate limit (nothing else to decide per
# message): a pause another process started holds this process's batches this
# much later at most, against a pause of SMTP_THROTTLE_PAUSE_SECONDS (a message
# sent meanwhile and refused as throttled waits like any other).
PAUSE_CHECK_EVERY = 0.2


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


# -- messages per minute -------------------------------------------------------


def message_admit(server: SmtpServer, *, hold: bool = True) -> Admission:
    """Count one message against the configuration's limits now, or say how long
    to wait (a pause after throttling, or the rate). ``hold=False`` counts it
    whatever the limits say (an email a person waits for)."""
    token = uuid.uuid4().hex
    limit = server.messages_per_minute

    def redis_call() -> tuple[bool, float, str]:
        admitted, wait, reason = in_redis.client.script("admit", in_redis.ADMIT)(
            keys=[key(server, "sent"), key(server, "pause")],
            args=[limit, window(), token, provisional(), int(hold)],
        )
        return bool(admitted), float(wait), (reason or b"").decode()

    def database_call() -> tuple[bool, float, str]:
        nonlocal token
        token = IN_DATABASE + token
        return in_database.admit(server, token, hold=hold)

    admitted, wait, reason = decide(redis_call, database_call)
    if admitted:
        return Admission(wait=0.0, token=token if limit else "")
    return Admission(wait=max(wait, 0.001), reason=reason)


def message_sent(server: SmtpServer, token: str) -> None:
    """The admitted message ``token`` reached the server (or failed) by now."""
    if not token:
        return

    if token.startswith(IN_DATABASE):
        in_database.sent(token)
        return
    # Redis away: the entry keeps its provisional stamp, and expires later.
    quietly(
        lambda: in_redis.client.script("sent", in_redis.SENT)(
            keys=[key(server, "sent")], args=[token]
        )
    )


def message_unused(server: SmtpServer, token: str) -> None:
    """The admitted message ``token`` was not sent after all (no connection
    slot): its turn is free again."""
    if not token:
        return
    if token.startswith(IN_DATABASE):
        in_database.release(token)
        return
    quietly(lambda: in_redis.client.client().zrem(key(server, "sent"), token))


class _Pauses:
    """What this process last learnt of each configuration's pause, and when
    (monotonic clock): only for configurations without a rate limit, whose
    admission decides nothing but the pause."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # limit key -> (learnt at, paused until)
        self._known: dict[str, tuple[float, float]] = {}

    def note(self, server: SmtpServer, wait: float) -> None:
        now = time.monotonic()
        with self._lock:
            self._known[server.limit_key] = (now, now + max(wait, 0.0))

    def admission(self, server: SmtpServer) -> Admission | None:
        """The admission of a message from what is known, or None if what is
        known is older than ``PAUSE_CHECK_EVERY`` (or there is a rate to count)."""
        if server.messages_per_minute:
            return None
        with self._lock:
            known = self._known.get(server.limit_key)
        now = time.monotonic()
        if known is None or now - known[0] > PAUSE_CHECK_EVERY:
            return None
        if known[1] > now:
            return Admission(wait=known[1] - now, reason="paused")
        return Admission(wait=0.0)


_pauses = _Pauses()


def message_turn(server: SmtpServer) -> Admission:
    """``message_admit``, waiting up to ``LONGEST_WAIT`` in all for a turn that
    comes soon; a longer wait is returned for the email to go back to the queue.
    Without a rate limit, the pause is asked for at most every
    ``PAUSE_CHECK_EVERY`` seconds (see ``_Pauses``)."""
    waited = 0.0
    while True:
        admission = _pauses.admission(server)
        if admission is None:
            admission = message_admit(server)
            if not server.messages_per_minute:
                _pauses.note(server, admission.wait)
        if admission.admitted or waited + admission.wait > LONGEST_WAIT:
            return admission
        time.sleep(admission.wait)
        waited += admission.wait


def turns(first_wait: float, count: int, *, per_window: int) -> list[float]:
    """Delays for ``count`` emails held together: the first at ``first_wait``,
    each next one a message's share of the window later (the rate's pace), so
    that they come back one by one as the window makes room instead of all at
    once to be held again (0 per window: all at ``first_wait``)."""
    if per_window <= 0:
        return [first_wait] * count
    pace = window() / per_window
    return [first_wait + n * pace for n in range(count)]


# -- concurrent connections ------------------------------------------------------


def connection_take(server: SmtpServer, *, hold: bool = True) -> str | None:
    """A connection slot for a new session (its token; "" if the configuration
    has no limit), or None when every slot is in use. ``hold=False`` takes one
    whatever the limit (a session a person waits for)."""
    if not server.max_connections:
        return ""
    token = uuid.uuid4().hex

    def redis_call() -> bool:
        return bool(
            in_redis.client.script("take", in_redis.TAKE)(
                keys=[key(server, "connections")],
                args=[server.max_connections, lease_seconds(), token, int(hold)],
            )
        )

    def database_call() -> bool:
        nonlocal token
        token = IN_DATABASE + token
        return in_database.take(server, token, hold=hold)

    taken = decide(redis_call, database_call)
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

    if token.startswith(IN_DATABASE):
        in_database.renew(token)
        return
    quietly(
        lambda: in_redis.client.script("renew", in_redis.RENEW)(
            keys=[key(server, "connections")], args=[lease_seconds(), token]
        )
    )


def connection_release(server: SmtpServer, token: str) -> None:
    """The session of slot ``token`` is closed."""
    if not token:
        return

    if token.startswith(IN_DATABASE):
        in_database.release(token)
        return
    # Redis away: the slot is free again when its lease runs out.
    quietly(lambda: in_redis.client.client().zrem(key(server, "connections"), token))


# -- throttling ----------------------------------------------------------------


def throttle_pause(server: SmtpServer) -> float:
    """The server is throttling: pause the configuration for every worker;
    returns the seconds until it may send again."""

    def redis_call() -> float:
        return float(
            in_redis.client.script("pause", in_redis.PAUSE)(
                keys=[key(server, "pause")],
                args=[
                    settings.SMTP_THROTTLE_PAUSE_SECONDS,
                    settings.SMTP_THROTTLE_MAX_PAUSE_SECONDS,
                ],
            )
        )

    pause = decide(redis_call, lambda: in_database.pause(server))
    _pauses.note(server, pause)
    return pause


# -- a session a person waits for ------------------------------------------------


@contextmanager
def counted(server: SmtpServer | None, *, message: bool = True) -> Iterator[None]:
    """Around a session that is never held (a test email, a verification, a
    health check): its connection, and its message if it sends one, count
    against the configuration's limits, so that bulk emails make room for them.
    ``None`` (an unsaved draft's session) counts against nothing."""
    if server is None:
        yield
        return
    admission = message_admit(server, hold=False) if message else Admission(0.0)
    slot = connection_take(server, hold=False)
    try:
        yield
    finally:
        message_sent(server, admission.token)
        connection_release(server, slot or "")
