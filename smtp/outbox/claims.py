"""Claiming outbox rows: a conditional UPDATE and a lease.

An email whose worker stopped while it was claimed (``rehands`` > 0) is sent on
its own, never in a batch: if it is what stops workers, only its own count goes
up (``SMTP_MAX_REHANDS``).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet

from smtp.models import (
    TEST_KINDS,
    Email,
    EmailStatus,
)


def claimable(now: datetime) -> Q:
    # A row whose lease ran out goes back to the queue through the sweeper only,
    # which counts how often its worker stopped (``outbox_sweep``).
    return Q(status=EmailStatus.QUEUED, next_attempt_at__lte=now)


def _take(emails: QuerySet[Email], *, token: uuid.UUID, now: datetime) -> int:
    """Mark these rows as this worker's, for the length of a lease."""
    return emails.update(
        status=EmailStatus.SENDING,
        claim_token=token,
        lease_until=now + timedelta(seconds=settings.SMTP_LEASE_SECONDS),
        progress="claimed",
    )


def claim_one(email_id: int, *, token: uuid.UUID, now: datetime) -> Email | None:
    return next(iter(claim_ids([email_id], token=token, now=now)), None)


def claim_ids(ids: list[int], *, token: uuid.UUID, now: datetime) -> list[Email]:
    """Claim these emails (those still claimable); the rest belong to others."""
    _take(Email.objects.filter(pk__in=ids).filter(claimable(now)), token=token, now=now)
    return list(
        Email.objects.filter(pk__in=ids, claim_token=token)
        .select_related("draft", "partner", "organization", "requested_by")
        .order_by("pk")
    )


def claim_more(
    first: Email, *, token: uuid.UUID, now: datetime, limit: int
) -> list[Email]:
    """Other due system emails of the same tenant, for the same connection."""
    return _claim_due(
        Q(
            partner_id=first.partner_id,
            organization_id=first.organization_id,
            draft__isnull=True,
            rehands=0,
        )
        & ~Q(kind__in=TEST_KINDS)
        & ~Q(pk=first.pk),
        token=token,
        now=now,
        limit=limit,
    )


def claim_turn(
    of_tenant: Q, *, token: uuid.UUID, now: datetime, limit: int
) -> tuple[list[Email], bool]:
    """A turn's batch: the tenant's due bulk emails, oldest first; and whether
    more were due than the batch took (found by the same statement)."""
    ids, more = _due_ids(of_tenant, token=token, now=now, limit=limit, one_more=True)
    return _claimed(ids, token=token), more


def _due_ids(
    where: Q, *, token: uuid.UUID, now: datetime, limit: int, one_more: bool = False
) -> tuple[list[int], bool]:
    """Claim up to ``limit`` due queued emails matching ``where``, oldest first
    (rows another worker is claiming are skipped, not waited for); their ids,
    and, with ``one_more``, whether another one was due."""
    if limit <= 0:
        return [], False
    with transaction.atomic():
        ids = list(
            Email.objects.filter(
                where, status=EmailStatus.QUEUED, next_attempt_at__lte=now
            )
            .order_by("next_attempt_at", "pk")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[: limit + one_more]
        )
        more = len(ids) > limit
        ids = ids[:limit]
        if ids:
            _take(
                Email.objects.filter(pk__in=ids, status=EmailStatus.QUEUED),
                token=token,
                now=now,
            )
    return ids, more


def _claim_due(where: Q, *, token: uuid.UUID, now: datetime, limit: int) -> list[Email]:
    """Up to ``limit`` due queued emails matching ``where``, oldest first; rows
    another worker is claiming are skipped, not waited for."""
    ids, _more = _due_ids(where, token=token, now=now, limit=limit)
    return _claimed(ids, token=token)


def _claimed(ids: list[int], *, token: uuid.UUID) -> list[Email]:
    if not ids:
        return []
    return list(
        Email.objects.filter(pk__in=ids, claim_token=token)
        .select_related("partner", "organization", "requested_by")
        .order_by("next_attempt_at", "pk")
    )
