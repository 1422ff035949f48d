"""Open SMTP sessions of a worker thread, by configuration, for reuse."""

from __future__ import annotations

import threading
import time

from smtp.delivery import SmtpConnection, StepFailed
from smtp.delivery.server import SmtpServer

IDLE_CHECK_AFTER = 5.0
IDLE_CLOSE_AFTER = 60.0


class ConnectionPool(threading.local):
    """Open sessions of this worker thread, by configuration, for reuse."""

    def __init__(self) -> None:
        self.open: dict[str, tuple[SmtpConnection, float]] = {}

    @staticmethod
    def key(server: SmtpServer) -> str:
        return server.identity()

    def get(self, server: SmtpServer) -> tuple[SmtpConnection, bool]:
        """A session ready for a transaction, and whether it was reused."""
        self.close_idle()
        key = self.key(server)
        entry = self.open.get(key)
        now = time.monotonic()
        if entry is not None:
            connection, last_used = entry
            # Each transaction on a reused session has a deadline of its own.
            connection.renew_deadline()
            if now - last_used < IDLE_CHECK_AFTER or connection.alive():
                self.open[key] = (connection, now)
                connection.steps = []
                return connection, True
            self.discard(server)
        connection = SmtpConnection(server)
        try:
            connection.open()
        except StepFailed:
            connection.close()
            raise
        self.open[key] = (connection, now)
        return connection, False

    def touch(self, server: SmtpServer) -> None:
        key = self.key(server)
        if key in self.open:
            self.open[key] = (self.open[key][0], time.monotonic())

    def reset_or_discard(self, server: SmtpServer) -> None:
        """After a refused transaction: RSET to keep the session, else drop it."""
        entry = self.open.get(self.key(server))
        if entry is not None and entry[0].reset():
            return
        self.discard(server)

    def discard(self, server: SmtpServer) -> None:
        entry = self.open.pop(self.key(server), None)
        if entry is not None:
            entry[0].close()

    def close_idle(self) -> None:
        now = time.monotonic()
        for key, (connection, last_used) in list(self.open.items()):
            if now - last_used > IDLE_CLOSE_AFTER:
                connection.close()
                del self.open[key]

    def close_all(self) -> None:
        for connection, _ in self.open.values():
            connection.close()
        self.open.clear()


pool = ConnectionPool()


def close_pooled_connections() -> None:
    """Close this thread's pooled SMTP sessions (worker shutdown)."""
    pool.close_all()
