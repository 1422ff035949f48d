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

Timestamps (``timestamptz``) are read by psycopg's own loader, compiled in C
with ``psycopg[binary]``, where Django registers one of its own written in
Python (to give every value the connection's time zone), which costs about nine
times as much per value: every session, user, configuration, email and audit
event read carries some. With ``USE_TZ`` and the connection in UTC, as Django
keeps it, psycopg's loader gives the same values, in ``datetime.UTC``.

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

import datetime
import select
from functools import lru_cache
from typing import Any

import psycopg
from django.db.backends.postgresql import base
from psycopg import ClientCursor, adapt, errors
from psycopg.postgres import types
from psycopg.pq import Format, TransactionStatus

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


TIMESTAMPTZ_OID = types["timestamptz"].oid
# psycopg's own loader of timestamps as text: its compiled one where it has it.
_PSYCOPG_TIMESTAMPTZ = psycopg.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)


class UtcTimestamptzLoader(adapt.Loader):
    """psycopg's ``timestamptz`` loader (its C one where psycopg has it), which
    gives a connection in UTC values in ``datetime.UTC``, as Django's loader
    for UTC does (``timezone`` is what Django compares, to keep it)."""

    timezone = datetime.UTC

    def __init__(self, oid: int, context: adapt.AdaptContext | None = None) -> None:
        super().__init__(oid, context)
        # psycopg calls ``load`` for each value: psycopg's own, with no Python
        # frame of this class in between.
        self.load = _PSYCOPG_TIMESTAMPTZ(oid, context).load

    def load(self, data: Any) -> datetime.datetime:  # replaced in __init__
        raise NotImplementedError


@lru_cache(maxsize=4)
def _adapters_reading_utc(django_adapters: adapt.AdaptersMap) -> adapt.AdaptersMap:
    """Django's adapters for a connection, with ``UtcTimestamptzLoader``."""
    adapters = adapt.AdaptersMap(django_adapters)
    adapters.register_loader(TIMESTAMPTZ_OID, UtcTimestamptzLoader)
    return adapters


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        if params.get("cursor_factory") is base.ServerBindingCursor:
            params["cursor_factory"] = ReplanningCursor
        # Django keeps the connection in UTC with ``USE_TZ`` and no database
        # ``TIME_ZONE``; otherwise its loader moves values to another zone.
        if self.timezone is datetime.UTC and "context" in params:
            params["context"] = _adapters_reading_utc(params["context"])
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
