"""Long polls (``?wait=N``): each one holds a web server thread while it waits.

Bounded so that a few clients cannot take every gunicorn thread, and ``/healthz``
with them: a wait lasts at most ``API_WAIT_MAX_SECONDS``; a user has at most
``API_WAITS_PER_USER`` at a time across every web process (rows in the database,
each with an expiry; beyond, 429); and one process spends at most
``API_WAITS_PER_PROCESS`` threads on them (beyond, the answer comes at once and
the client simply asks again).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from core.models import ApiWait

# A row outlives its wait by this much before it counts as left by a dead request.
EXPIRY_MARGIN = timedelta(seconds=5)


class WaitRefused(Exception):
    """The user already waits as often as allowed; ``retry_after`` in seconds."""

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


_process_lock = threading.Lock()
_process_waits: threading.BoundedSemaphore | None = None


def _process_semaphore() -> threading.BoundedSemaphore:
    """The threads this process may spend waiting; built on first use."""
    global _process_waits
    with _process_lock:
        if _process_waits is None:
            _process_waits = threading.BoundedSemaphore(
                max(1, settings.API_WAITS_PER_PROCESS)
            )
        return _process_waits


@transaction.atomic
def _claim(*, user: AbstractBaseUser, seconds: int) -> int:
    """A place among the user's waits (its id), or ``WaitRefused``."""
    now = timezone.now()
    # One user's claims one at a time, whichever process they come from.
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()
    ApiWait.objects.filter(user=user, expires_at__lte=now).delete()
    limit = settings.API_WAITS_PER_USER
    running = list(
        ApiWait.objects.filter(user=user)
        .order_by("expires_at")
        .values_list("expires_at", flat=True)
    )
    if len(running) >= limit:
        ends = running[0] - EXPIRY_MARGIN
        retry_after = max(1, math.ceil((ends - now).total_seconds()))
        raise WaitRefused(
            f"At most {limit} waiting requests (?wait=) at a time per user: let "
            f"one finish, or ask without ?wait. Try again in {retry_after} s.",
            retry_after=retry_after,
        )
    expires_at = now + timedelta(seconds=seconds) + EXPIRY_MARGIN
    return ApiWait.objects.create(user=user, expires_at=expires_at).pk


@contextmanager
def api_wait(*, user: AbstractBaseUser, seconds: int) -> Iterator[int]:
    """Hold one of ``user``'s waits; yields how many seconds to wait.

    ``seconds`` is cut to ``API_WAIT_MAX_SECONDS``; 0 when this process has no
    thread to spare. Raises ``WaitRefused`` (nothing held) when the user already
    waits ``API_WAITS_PER_USER`` times.
    """
    seconds = min(seconds, settings.API_WAIT_MAX_SECONDS)
    if seconds <= 0:
        yield 0
        return
    place = _claim(user=user, seconds=seconds)
    semaphore = _process_semaphore()
    spare = semaphore.acquire(blocking=False)
    try:
        yield seconds if spare else 0
    finally:
        if spare:
            semaphore.release()
        ApiWait.objects.filter(pk=place).delete()
