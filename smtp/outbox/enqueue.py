"""Writing emails to the outbox; their ids go to the broker after commit."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import make_msgid
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.models import Category
from audit.services import (
    EventData,
    actor_label,
    audit_events_record_bulk,
    event_scope,
)
from smtp.delivery import ehlo_name
from smtp.models import (
    Email,
    EmailKind,
    SmtpDraft,
)
from smtp.outbox.publish import email_publish, emails_publish
from tenants.models import Organization, Partner, User


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
                    # Found by the Audit Logs' search (never the body).
                    "subject": email.subject,
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
