"""Open SMTP sessions of a worker thread, by configuration, for reuse.

A session holds one of its configuration's connection slots (see limits) from
before it is opened until it is closed.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from smtp.delivery import SmtpConnection
from smtp.delivery.server import SmtpServer
from smtp.outbox import limits

IDLE_CHECK_AFTER = 5.0
IDLE_CLOSE_AFTER = 60.0
# A slot's lease is renewed when a third of it has passed since the last renewal.
RENEW_AFTER = 1 / 3


@dataclass
class Pooled:
    connection: SmtpConnection
    server: SmtpServer
    last_used: float
    # The connection slot it holds ("": its configuration has no limit).
    slot: str = ""
    renewed_at: float = 0.0


class ConnectionPool(threading.local):
    """Open sessions of this worker thread, by configuration, for reuse."""

    def __init__(self) -> None:
        self.open: dict[str, Pooled] = {}

    @staticmethod
    def key(server: SmtpServer) -> str:
        return server.identity()

    def get(self, server: SmtpServer) -> tuple[SmtpConnection, bool]:
        """A session ready for a transaction, and whether it was reused; raises
        ``limits.LimitReached`` if the configuration has no connection slot free."""
        self.close_idle()
        key = self.key(server)
        entry = self.open.get(key)
        now = time.monotonic()
        if entry is not None:
            # Each transaction on a reused session has a deadline of its own.
            entry.connection.renew_deadline()
            if now - entry.last_used < IDLE_CHECK_AFTER or entry.connection.alive():
                entry.last_used = now
                entry.connection.steps = []
                self._renew(entry)
                return entry.connection, True
            self.discard(server)
        slot = limits.connection_wait(server)
        connection = SmtpConnection(server)
        try:
            connection.open()
        except BaseException:
            connection.close()
            limits.connection_release(server, slot)
            raise
        self.open[key] = Pooled(connection, server, now, slot, now)
        return connection, False

    @staticmethod
    def _renew(entry: Pooled) -> None:
        now = time.monotonic()
        lease = limits.lease_seconds()
        if entry.slot and now - entry.renewed_at > lease * RENEW_AFTER:
            limits.connection_renew(entry.server, entry.slot)
            entry.renewed_at = now

    def touch(self, server: SmtpServer) -> None:
        entry = self.open.get(self.key(server))
        if entry is not None:
            entry.last_used = time.monotonic()
            self._renew(entry)

    def reset_or_discard(self, server: SmtpServer) -> None:
        """After a refused transaction: RSET to keep the session, else drop it."""
        entry = self.open.get(self.key(server))
        if entry is not None and entry.connection.reset():
            return
        self.discard(server)

    def discard(self, server: SmtpServer) -> None:
        entry = self.open.pop(self.key(server), None)
        if entry is not None:
            self._close(entry)

    def release(self, server: SmtpServer) -> None:
        """Close the session of a configuration with a connection limit: an idle
        session would hold a slot no other worker can use."""
        entry = self.open.get(self.key(server))
        if entry is not None and entry.slot:
            self.discard(server)

    @staticmethod
    def _close(entry: Pooled) -> None:
        try:
            entry.connection.close()
        finally:
            limits.connection_release(entry.server, entry.slot)

    def close_idle(self) -> None:
        now = time.monotonic()
        for key, entry in list(self.open.items()):
            if now - entry.last_used > IDLE_CLOSE_AFTER:
                del self.open[key]
                self._close(entry)

    def close_all(self) -> None:
        entries, self.open = list(self.open.values()), {}
        for entry in entries:
            self._close(entry)


pool = ConnectionPool()


def close_pooled_connections() -> None:
    """Close this thread's pooled SMTP sessions (worker shutdown)."""
    pool.close_all()
