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

With prepared statements (``DATABASE_PREPARED_STATEMENTS``: parameters bound
by the server, and statements run within ``prepared_in_server`` prepared), a
statement prepared before a migration changed the type of a column it reads
(``ALTER COLUMN ... TYPE``, a longer ``max_length``) fails on that connection
("cached plan must not change result type") until the statement is prepared
again. Outside a transaction the failed statement changed nothing: the cursor
drops the connection's prepared statements and runs it once more. Inside one,
the transaction has failed anyway; its rollback drops them (psycopg does so on
every rollback).
"""

from __future__ import annotations

import select
from typing import Any

from django.db.backends.postgresql import base
from psycopg import ClientCursor, errors
from psycopg.pq import TransactionStatus

from core.postgresql import PREPARE_IN_SERVER


def _readable(descriptor: int) -> bool:
    """Whether the socket has something to read (or its end) right now."""
    poller = select.poll()
    poller.register(descriptor, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


def _stale_plan(error: errors.FeatureNotSupported) -> bool:
    """Whether PostgreSQL refused a prepared statement whose result columns
    changed type since it was prepared (by the function that says so, since the
    message is translated with ``lc_messages``)."""
    return error.diag.source_function == "RevalidateCachedQuery"


# The most parameters one statement carries in PostgreSQL's protocol.
MOST_BOUND_PARAMETERS = 65_535


class ReplanningCursor(base.ServerBindingCursor):
    """Django's server-side binding cursor, preparing a statement only within
    ``prepared_in_server`` (never of psycopg's own accord); one whose prepared
    plan a migration made stale is prepared again when it ran outside a
    transaction.

    A statement with more parameters than the protocol carries (a long
    ``pk__in``, a large batch of rows) has them merged into its text by the
    client, as Django's default cursor does with every statement.
    """

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        if params is not None and len(params) > MOST_BOUND_PARAMETERS:
            merged = ClientCursor(self.connection).mogrify(query, params)
            return super().execute(merged, None, prepare=False)
        kwargs.setdefault("prepare", PREPARE_IN_SERVER.get())
        try:
            return super().execute(query, params, **kwargs)
        except errors.FeatureNotSupported as error:
            idle = self.connection.info.transaction_status == TransactionStatus.IDLE
            if not (idle and _stale_plan(error)):
                raise
        # psycopg forgets its prepared statements when it sees this command.
        self.connection.execute("DEALLOCATE ALL", prepare=False)
        return super().execute(query, params, **kwargs)


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        if params.get("cursor_factory") is base.ServerBindingCursor:
            params["cursor_factory"] = ReplanningCursor
        return params

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
