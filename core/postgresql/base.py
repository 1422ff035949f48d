"""Django's PostgreSQL backend, with a health check that costs no round trip.

With ``CONN_HEALTH_CHECKS``, Django checks a reused connection before a request
(or a task) uses it, with ``SELECT 1``: a round trip to the database on every
request, however recently the connection answered. A server that ends a
connection (a restart, ``pg_terminate_backend``, ``idle_session_timeout``) sends
its reason and closes the socket; a network that resets it sends a reset. Either
makes the socket readable while the connection is idle between requests, when
the server has nothing else to say. So an idle connection whose socket has
nothing to read is usable as it is; one with something to read, one in a
transaction, or one psycopg found broken gets Django's round trip, as before.

What neither check sees is a server that vanished without a word (a network
partition): the next query waits for TCP, with ``SELECT 1`` as without it.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base
from psycopg.pq import TransactionStatus


def _readable(descriptor: int) -> bool:
    """Whether the socket has something to read (or its end) right now."""
    poller = select.poll()
    poller.register(descriptor, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        if connection.info.transaction_status == TransactionStatus.IDLE:
            try:
                if not _readable(connection.fileno()):
                    return True
            except (OSError, ValueError):
                return False
        # Something arrived unasked (the server's last words, a notice), or
        # the connection is inside a transaction: ask the server.
        return super().is_usable()
