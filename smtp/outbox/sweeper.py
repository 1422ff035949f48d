"""Handing out again what was left queued or stuck."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from smtp.models import (
    Email,
    EmailStatus,
)
from smtp.outbox.enqueue import email_publish

logger = logging.getLogger(__name__)


def outbox_sweep(*, limit: int = 500) -> int:
    """Hand out again emails left queued (broker outage) or stuck past their lease."""
    now = timezone.now()
    grace = now - timedelta(seconds=settings.SMTP_REQUEUE_AFTER_SECONDS)
    never_published = Q(
        status=EmailStatus.QUEUED, enqueued_at__isnull=True, next_attempt_at__lte=now
    )
    waiting_too_long = Q(
        status=EmailStatus.QUEUED, next_attempt_at__lte=grace, enqueued_at__lte=grace
    )
    lease_expired = Q(status=EmailStatus.SENDING, lease_until__lt=now) & (
        Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=F("lease_until"))
    )
    ids = list(
        Email.objects.filter(never_published | waiting_too_long | lease_expired)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    published = 0
    for email_id in ids:
        if not email_publish(email_id):
            break  # the broker is down; try again at the next sweep
        published += 1
    if published:
        logger.info("Outbox sweep handed out %s email(s) again.", published)
    return published
