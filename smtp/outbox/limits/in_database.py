"""The limits in the database: ``DeliveryLimit`` rows, one per configuration,
locked while a worker decides (PostgreSQL and SQLite alike), on the workers'
clocks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import IntegrityError, transaction

from smtp.delivery.server import SmtpServer
from smtp.models import DeliveryLimit, DeliveryLimitEntry
from smtp.outbox.limits.periods import lease_seconds, provisional, window


@contextmanager
def locked(key: str) -> Iterator[float]:
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


def entries(key: str, kind: str):
    return DeliveryLimitEntry.objects.filter(limit_id=key, kind=kind)


def admit(server: SmtpServer, token: str, *, hold: bool) -> tuple[bool, float, str]:
    key, limit, seconds = server.limit_key, server.messages_per_minute, window()
    with locked(key) as now:
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
        messages = entries(key, DeliveryLimitEntry.Kind.MESSAGE)
        messages.filter(stamp__lte=now - seconds).delete()
        stamps = list(messages.order_by("stamp").values_list("stamp", flat=True))
        if hold and len(stamps) >= limit:
            return False, stamps[len(stamps) - limit] + seconds - now, "rate"
        DeliveryLimitEntry.objects.create(
            limit_id=key,
            kind=DeliveryLimitEntry.Kind.MESSAGE,
            token=token,
            stamp=now + provisional(),
        )
        return True, 0.0, ""


def take(server: SmtpServer, token: str, *, hold: bool) -> bool:
    key = server.limit_key
    with locked(key) as now:
        slots = entries(key, DeliveryLimitEntry.Kind.CONNECTION)
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


def pause(server: SmtpServer) -> float:
    base = float(settings.SMTP_THROTTLE_PAUSE_SECONDS)
    longest = float(settings.SMTP_THROTTLE_MAX_PAUSE_SECONDS)
    with locked(server.limit_key) as now:
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


def sent(token: str) -> None:
    DeliveryLimitEntry.objects.filter(token=token).update(stamp=time.time())


def renew(token: str) -> None:
    DeliveryLimitEntry.objects.filter(token=token).update(
        stamp=time.time() + lease_seconds()
    )


def release(token: str) -> None:
    DeliveryLimitEntry.objects.filter(token=token).delete()
