"""Writing emails to the outbox and handing their ids to the broker."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.utils import make_msgid
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from audit.models import Category
from audit.services import EventData, actor_label, audit_events_record_bulk
from smtp.delivery import ehlo_name
from smtp.models import (
    Email,
    EmailKind,
    EmailStatus,
    SmtpDraft,
)
from tenants.models import Organization, Partner, User

logger = logging.getLogger(__name__)

PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.1,
    "interval_max": 0.2,
}


@dataclass(frozen=True)
class NewEmail:
    kind: EmailKind
    recipient: str
    subject: str
    body: str
    partner: Partner | None = None
    organization: Organization | None = None
    sender: str = ""
    requested_by: User | None = None
    draft: SmtpDraft | None = None


def event_scope(email: Email) -> dict[str, int | None]:
    return {"partner_id": email.partner_id, "organization_id": email.organization_id}


def email_enqueue(new: NewEmail) -> Email:
    """Write one email and its "queued" event; publish its id after commit."""
    return emails_enqueue([new])[0]


@transaction.atomic
def emails_enqueue(batch: list[NewEmail]) -> list[Email]:
    """Write emails and their "queued" events in one transaction.

    After commit, one email is handed to the broker by its id, several in tasks
    of up to ``SMTP_BATCH_SIZE`` ids (the worker sends them over one connection).
    """
    now = timezone.now()
    domain = ehlo_name()
    emails = Email.objects.bulk_create(
        [
            Email(
                kind=new.kind,
                partner=new.partner,
                organization=new.organization,
                requested_by=new.requested_by,
                draft=new.draft,
                sender=new.sender,
                recipient=new.recipient,
                subject=new.subject,
                body=new.body,
                message_id=make_msgid(domain=domain),
                next_attempt_at=now,
                # Optimistic: cleared again if the broker cannot take the task.
                enqueued_at=now,
                created_at=now,
            )
            for new in batch
        ]
    )
    audit_events_record_bulk(
        [
            EventData(
                category=Category.SYSTEMAUDIT,
                type="email.queued",
                summary=f"{email.get_kind_display()} to {email.recipient} queued",
                actor=actor_label(new.requested_by),
                **event_scope(email),
                detail={
                    "email_id": email.pk,
                    "kind": email.kind,
                    "recipient": email.recipient,
                    "message_id": email.message_id,
                },
            )
            for email, new in zip(emails, batch, strict=True)
        ]
    )
    if len(emails) == 1:
        transaction.on_commit(partial(email_publish, emails[0].pk, first=True))
    else:
        size = settings.SMTP_BATCH_SIZE
        for start in range(0, len(emails), size):
            ids = [email.pk for email in emails[start : start + size]]
            transaction.on_commit(partial(emails_publish, ids))
    return emails


def _publish(task, kwargs: dict, email_ids: list[int], countdown: float = 0) -> bool:
    """Hand a task to the broker; on an outage, the emails wait for the sweeper."""
    try:
        task.apply_async(
            kwargs=kwargs,
            countdown=countdown or None,
            queue=settings.CELERY_TASK_DEFAULT_QUEUE,
            # Two quick reconnects (a stale pooled connection), then give up:
            # the row is the truth, and the sweeper hands it out later.
            retry=True,
            retry_policy=PUBLISH_RETRY_POLICY,
        )
    except (BrokerError, OSError) as error:
        logger.warning(
            "Broker unavailable; %s email(s) stay queued until the sweeper hands "
            "them out again: %s",
            len(email_ids),
            error,
        )
        Email.objects.filter(pk__in=email_ids, status=EmailStatus.QUEUED).update(
            enqueued_at=None
        )
        return False
    return True


def emails_publish(email_ids: list[int]) -> bool:
    """Hand several emails to the broker in one task."""
    from smtp.tasks import deliver_emails_task

    return _publish(deliver_emails_task, {"email_ids": email_ids}, email_ids)


def email_publish(email_id: int, *, countdown: float = 0, first: bool = False) -> bool:
    """Hand one email's id to the broker (``countdown``: a retry's delay)."""
    from smtp.tasks import deliver_email_task

    published = _publish(
        deliver_email_task, {"email_id": email_id}, [email_id], countdown
    )
    if published and not first:
        Email.objects.filter(pk=email_id).update(enqueued_at=timezone.now())
    return published
