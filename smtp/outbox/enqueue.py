"""Writing emails to the outbox; their ids go to the broker after commit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import make_msgid
from functools import cache, lru_cache, partial

from django.db import connections, transaction
from django.utils import timezone

from audit.models import AuditEvent, Category
from audit.services import (
    EventData,
    actor_label,
    audit_events_index_after_commit,
    audit_events_record_bulk,
    event_scope,
)
from core.postgresql import prepared_in_server, rows_from_arrays
from smtp.delivery import ehlo_name
from smtp.models import (
    Email,
    EmailKind,
    SmtpDraft,
)
from smtp.outbox.publish import email_publish_soon, emails_hand_over
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
    # The HTML alternative of ``body``; empty: a plain-text email.
    html_body: str = ""
    # The domain of its Message-ID (the sender's); empty: the console's EHLO name.
    message_domain: str = ""


def email_enqueue(new: NewEmail) -> Email:
    """Write one email and its "queued" event; publish its id after commit."""
    return emails_enqueue([new])[0]


def emails_enqueue(batch: list[NewEmail]) -> list[Email]:
    """Write emails and their "queued" events in one transaction.

    On PostgreSQL both are one statement: in the caller's transaction when there
    is one, else a transaction of its own (one round trip in all). After commit
    they go to their lanes (``emails_hand_over``): interactive ones by their ids,
    bulk ones as turns of their tenant.
    """
    now = timezone.now()
    domain = ehlo_name()
    emails = [
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
            html_body=new.html_body or None,
            message_id=make_msgid(domain=new.message_domain or domain),
            next_attempt_at=now,
            # Optimistic: cleared again if the broker cannot take the task.
            enqueued_at=now,
            created_at=now,
        )
        for new in batch
    ]
    actors = [actor_label(new.requested_by) for new in batch]
    connection = connections[Email.objects.db]
    if connection.vendor == "postgresql":
        event_ids = _write_in_one_statement(connection, emails, actors, now=now)
        audit_events_index_after_commit(event_ids)
    else:
        _write_with_orm(emails, actors)
    if len(emails) == 1:
        # The caller does not wait for the broker (see ``email_publish_soon``).
        transaction.on_commit(partial(email_publish_soon, emails[0]))
    else:
        transaction.on_commit(partial(emails_hand_over, emails))
    return emails


def _queued_summary(email: Email) -> str:
    return f"{email.get_kind_display()} to {email.recipient} queued"


@transaction.atomic
def _write_with_orm(emails: list[Email], actors: list[str]) -> None:
    """The portable way (SQLite in development): two INSERTs in a transaction."""
    Email.objects.bulk_create(emails)
    audit_events_record_bulk(
        [
            EventData(
                category=Category.SYSTEMAUDIT,
                type="email.queued",
                summary=_queued_summary(email),
                actor=actor,
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
            for email, actor in zip(emails, actors, strict=True)
        ]
    )


def _write_in_one_statement(
    connection, emails: list[Email], actors: list[str], *, now: datetime
) -> list[int]:
    """INSERT the emails and, from their returned rows, their "queued" events in
    one statement (a data-modifying WITH); sets each email's id, returns the
    events' ids.

    The emails' values are prepared by their fields as Django's INSERT prepares
    them (defaults, encrypted body). One email (a request's) is one row of
    values, in a statement prepared in the server. A batch sends one array per
    column, so its statement's text is the same for two emails or a thousand:
    the driver parses it once, and PostgreSQL's parser reads 38 parameters
    rather than 35 per email. The events carry what the ORM path writes (see
    ``_write_with_orm``).
    """
    fields = _email_fields()
    rows = [
        [
            field.get_db_prep_save(field.pre_save(email, True), connection)
            for field in fields
        ]
        for email in emails
    ]
    events = [
        (email.message_id, actor[:254], _queued_summary(email)[:300])
        for email, actor in zip(emails, actors, strict=True)
    ]
    event_constants = [now, Category.SYSTEMAUDIT.value, "email.queued"]
    single = len(emails) == 1
    if single:
        params = [*rows[0], *event_constants, *events[0]]
    else:
        params = [
            *(list(column) for column in zip(*rows, strict=True)),
            *event_constants,
            *(list(column) for column in zip(*events, strict=True)),
        ]
    # A batch is planned for its size each time (the join of its rows to
    # their events).
    with prepared_in_server(single), connection.cursor() as cursor:
        cursor.execute(_one_statement(connection, arrays=not single), params)
        written = {message_id: (pk, event) for message_id, pk, event in cursor}
    for email in emails:
        email.pk = written[email.message_id][0]
        email._state.adding = False
        email._state.db = connection.alias
    return [event for _, event in written.values()]


@cache
def _email_fields() -> list:
    return [f for f in Email._meta.concrete_fields if not f.primary_key]


@lru_cache(maxsize=16)
def _one_statement(connection, *, arrays: bool) -> str:
    """The statement for one row of values, or for arrays of them: made once
    each, its text never changing, as PostgreSQL's plan cache and the driver's
    query cache like it."""
    quote = connection.ops.quote_name
    email_columns = ", ".join(quote(f.column) for f in _email_fields())
    if arrays:
        email_rows = rows_from_arrays(_email_fields(), connection)
        event_rows = "unnest(%b::varchar[], %b::varchar[], %b::varchar[])"
    else:
        email_rows = "VALUES (" + ", ".join(["%s"] * len(_email_fields())) + ")"
        event_rows = "(VALUES (%s, %s, %s))"
    event_columns = ", ".join(
        quote(AuditEvent._meta.get_field(name).column)
        for name in (
            "timestamp",
            "category",
            "type",
            "actor",
            "partner",
            "organization",
            "summary",
            "detail",
        )
    )
    # Only names and types from the models' metadata and placeholders are
    # formatted in.
    return f"""
        WITH email AS (
            INSERT INTO {quote(Email._meta.db_table)} ({email_columns})
            {email_rows}
            RETURNING id, message_id, kind, recipient, subject, partner_id,
                      organization_id
        ), event AS (
            INSERT INTO {quote(AuditEvent._meta.db_table)} ({event_columns})
            SELECT %s, %s, %s, v.actor, e.partner_id, e.organization_id, v.summary,
                   jsonb_build_object('email_id', e.id, 'kind', e.kind,
                                      'recipient', e.recipient,
                                      'subject', e.subject,
                                      'message_id', e.message_id)
            FROM email AS e
            JOIN {event_rows} AS v (message_id, actor, summary) USING (message_id)
            RETURNING id, (detail ->> 'email_id')::bigint AS email_id
        )
        SELECT email.message_id, email.id, event.id
        FROM email JOIN event ON event.email_id = email.id
    """  # noqa: S608
