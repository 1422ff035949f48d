"""Counting requests against a limit: one atomic statement per request.

A counter row per key holds the hits of a window that opens with its first
request. ``rate_limit_hit`` inserts the row, or updates it only while there is
room (or the window is over, which starts a new one), in a single
``INSERT ... ON CONFLICT DO UPDATE ... WHERE ... RETURNING``: the database decides
under the row's lock, so concurrent requests never both take the last place, and
no check-then-insert race exists. It runs the same on PostgreSQL and SQLite.

The counters live in the database rather than in Redis: the limit then holds in
every deployment (Redis is only the broker, and may be down), and in the same
place as the rest of the truth. A request costs one short statement.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone
from django.utils.crypto import salted_hmac

from tenants.models import RateLimitCounter


def rate_limit_key(*, scope: str, value: str) -> str:
    """The counter key for ``value`` (e.g. an address) in ``scope``: a keyed hash."""
    digest = salted_hmac("tenants.ratelimit", f"{scope}\n{value}", algorithm="sha256")
    return f"{scope}:{digest.hexdigest()}"


def rate_limit_hit(
    *, key: str, limit: int, window: timedelta, now: datetime | None = None
) -> bool:
    """Count one request under ``key``: False once ``limit`` are in the window."""
    now = now or timezone.now()
    quote = connection.ops.quote_name
    table = quote(RateLimitCounter._meta.db_table)
    key_, started, hits = (quote(name) for name in ("key", "window_started", "hits"))
    over = connection.ops.adapt_datetimefield_value(now - window)
    # Identifiers come from the model; every value is a parameter.
    sql = (
        f"INSERT INTO {table} ({key_}, {started}, {hits}) VALUES (%s, %s, 1) "  # noqa: S608
        f"ON CONFLICT ({key_}) DO UPDATE SET "
        f"{hits} = CASE WHEN {table}.{started} <= %s THEN 1 "
        f"ELSE {table}.{hits} + 1 END, "
        f"{started} = CASE WHEN {table}.{started} <= %s "
        f"THEN excluded.{started} ELSE {table}.{started} END "
        f"WHERE {table}.{started} <= %s OR {table}.{hits} < %s "
        f"RETURNING {hits}"
    )
    params = [
        key,
        connection.ops.adapt_datetimefield_value(now),
        over,
        over,
        over,
        limit,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() is not None


def rate_limit_prune(
    *, scope: str, window: timedelta, now: datetime | None = None
) -> int:
    """Delete the scope's counters whose window is over (they count as absent)."""
    now = now or timezone.now()
    deleted, _ = RateLimitCounter.objects.filter(
        key__startswith=f"{scope}:", window_started__lte=now - window
    ).delete()
    return deleted
