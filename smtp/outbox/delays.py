"""Emails held back by their configuration's limits: back in the queue for
later, with no attempt and no retry used."""

from __future__ import annotations

import uuid
from datetime import timedelta
from functools import partial

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from audit.models import Category
from audit.services import EventData, audit_events_record_bulk, event_scope
from smtp.delivery.server import SmtpServer
from smtp.models import Email, EmailStatus
from smtp.outbox.publish import email_publish
from smtp.outbox.recording import MAX_RETRY_DELAY


def record_delayed(
    emails: list[Email],
    delays: list[float],
    *,
    token: uuid.UUID,
    reason: str,
    server: SmtpServer | None,
) -> None:
    """Put claimed, untried emails back in the queue for later, held by their
    configuration's limits (``reason``: rate, connections, paused): no attempt,
    no retry used, ``deferrals`` + 1, an ``email.delayed`` event; each published
    again with its delay."""
    if not emails:
        return
    now = timezone.now()
    words = {
        "rate": "its configuration's Messages per minute",
        "connections": "its configuration's Max connections",
        "paused": "a pause after the server throttled",
    }
    published: list[tuple[int, str, float]] = []
    events: list[EventData] = []
    with transaction.atomic():
        owned = set(
            Email.objects.select_for_update()
            .filter(pk__in=[e.pk for e in emails], claim_token=token)
            .values_list("pk", flat=True)
        )
        for email, delay in zip(emails, delays, strict=True):
            if email.pk not in owned:
                continue
            at = now + timedelta(seconds=delay)
            Email.objects.filter(pk=email.pk).update(
                status=EmailStatus.QUEUED,
                claim_token=None,
                lease_until=None,
                progress="",
                next_attempt_at=at,
                deferrals=F("deferrals") + 1,
            )
            published.append((email.pk, email.kind, delay))
            events.append(
                EventData(
                    category=Category.SYSTEMAUDIT,
                    type="email.delayed",
                    summary=f"{email.get_kind_display()} to {email.recipient} "
                    f"delayed {delay:.0f} s by {words.get(reason, reason)}",
                    **event_scope(email),
                    detail={
                        "email_id": email.pk,
                        "kind": email.kind,
                        "recipient": email.recipient,
                        "subject": email.subject,
                        "message_id": email.message_id,
                        "level": server.level if server else "",
                        "reason": "limit",
                        "limit": reason,
                        "deferrals": email.deferrals + 1,
                        "next_attempt_at": at.isoformat(),
                    },
                )
            )
        audit_events_record_bulk(events)
        for email_id, kind, delay in published:
            # A broker holds a delayed message for a while only (Redis: below
            # its visibility timeout); one that comes before the email is due
            # does nothing, and the sweeper hands the email out once it is.
            countdown = min(delay, MAX_RETRY_DELAY)
            transaction.on_commit(
                partial(email_publish, email_id, kind=kind, countdown=countdown)
            )
