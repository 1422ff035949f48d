"""Handing emails' ids to the broker: the only code of the outbox that does.

Tasks are named, not imported (``smtp.tasks`` is above the outbox). On a broker
outage the emails stay queued with ``enqueued_at`` cleared, and the sweeper hands
them out once the broker is back.
"""

from __future__ import annotations

import logging

from django.utils import timezone

from core.publish import publish
from smtp.models import Email, EmailStatus

logger = logging.getLogger(__name__)

# The Celery names of the tasks in smtp/tasks.py: wire names, kept as they are.
DELIVER_EMAIL = "smtp.deliver_email"
DELIVER_EMAILS = "smtp.deliver_emails"


def _published(email_ids: list[int], done: bool) -> bool:
    if not done:
        logger.warning(
            "%s email(s) stay queued until the sweeper hands them out again.",
            len(email_ids),
        )
        Email.objects.filter(pk__in=email_ids, status=EmailStatus.QUEUED).update(
            enqueued_at=None
        )
    return done


def emails_publish(email_ids: list[int]) -> bool:
    """Hand several emails to the broker in one task."""
    return _published(
        email_ids, publish(DELIVER_EMAILS, kwargs={"email_ids": email_ids})
    )


def email_publish(email_id: int, *, countdown: float = 0, first: bool = False) -> bool:
    """Hand one email's id to the broker (``countdown``: a retry's delay)."""
    published = _published(
        [email_id],
        publish(DELIVER_EMAIL, kwargs={"email_id": email_id}, countdown=countdown),
    )
    if published and not first:
        Email.objects.filter(pk=email_id).update(enqueued_at=timezone.now())
    return published
