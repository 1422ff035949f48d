"""Writes to the audit log. Services call these; nothing records events by signal."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache, lru_cache, partial
from typing import Any

from django.db import connections, router, transaction
from django.utils import timezone

from audit.index import search_enabled
from audit.models import AuditEvent, Category
from core.postgresql import prepared_in_server, rows_from_arrays
from core.publish import publish

SYSTEM_ACTOR = "system"
# Handed to the broker by name: services sit below audit/tasks.py.
INDEX_EVENTS_TASK = "audit.index_events"


@dataclass(frozen=True)
class EventData:
    """An event to record; see ``audit_event_record``."""

    category: Category
    type: str
    summary: str
    actor: str = SYSTEM_ACTOR
    partner_id: int | None = None
    organization_id: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def event_scope(subject) -> dict[str, int | None]:
    """The tenant an event is recorded for: ``partner_id`` and
    ``organization_id`` of anything that has both (an email, a tenant scope)."""
    return {
        "partner_id": subject.partner_id,
        "organization_id": subject.organization_id,
    }


def actor_label(user) -> str:
    """How an actor is named in the log: the user's email, or ``system``."""
    if user is None or not getattr(user, "is_authenticated", False):
        return SYSTEM_ACTOR
    return user.email


def _values(event: EventData, now: datetime) -> dict[str, Any]:
    """An event's values by the model's attribute names."""
    return {
        "timestamp": now,
        "category": event.category,
        "type": event.type,
        "actor": event.actor[:254],
        "partner_id": event.partner_id,
        "organization_id": event.organization_id,
        "summary": event.summary[:300],
        "detail": event.detail,
    }


def _build(event: EventData) -> AuditEvent:
    return AuditEvent(**_values(event, timezone.now()))


def audit_event_record(
    *,
    category: Category,
    type: str,
    summary: str,
    actor: str = SYSTEM_ACTOR,
    partner_id: int | None = None,
    organization_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event. Callers never put secrets or message bodies in ``detail``."""
    event = _build(
        EventData(
            category=category,
            type=type,
            summary=summary,
            actor=actor,
            partner_id=partner_id,
            organization_id=organization_id,
            detail=detail or {},
        )
    )
    event.save()
    audit_events_index_after_commit([event.pk])
    return event


def audit_events_record_bulk(events: Iterable[EventData]) -> list[int]:
    """Append many events in one INSERT (the delivery engine's hot path), at
    one timestamp; their ids, in order."""
    now = timezone.now()
    rows = [_values(event, now) for event in events]
    if not rows:
        return []
    connection = connections[router.db_for_write(AuditEvent)]
    if connection.vendor == "postgresql":
        ids = _insert_as_arrays(connection, rows)
    else:
        created = AuditEvent.objects.bulk_create([AuditEvent(**row) for row in rows])
        ids = [event.pk for event in created]
    audit_events_index_after_commit(ids)
    return ids


def _insert_as_arrays(connection, rows: list[dict[str, Any]]) -> list[int]:
    """The events in one statement of one array per column, its text the same
    for any number of events (prepared in the server): Django's bulk INSERT
    writes a statement of 8 parameters an event, which the driver parses again
    for every batch. Each value is prepared by its field, as Django's INSERT
    prepares it."""
    fields = _written_fields()
    params = [
        [field.get_db_prep_save(row[field.attname], connection) for row in rows]
        for field in fields
    ]
    with prepared_in_server(), connection.cursor() as cursor:
        cursor.execute(_insert_statement(connection), params)
        # One row is returned for each row inserted, in the order of the arrays.
        return [pk for (pk,) in cursor.fetchall()]


@cache
def _written_fields() -> list:
    return [f for f in AuditEvent._meta.concrete_fields if not f.primary_key]


@lru_cache(maxsize=16)
def _insert_statement(connection) -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in _written_fields())
    table = quote(AuditEvent._meta.db_table)
    pk = quote(AuditEvent._meta.pk.column)
    rows = rows_from_arrays(_written_fields(), connection)
    # Only names and types from the model's metadata are formatted in.
    return f"INSERT INTO {table} ({columns}) {rows} RETURNING {pk}"


def audit_events_index_after_commit(event_ids: list[int]) -> None:
    """With Elasticsearch configured, index the events once they are committed
    (for events written in a statement of their own, like the outbox's)."""
    if search_enabled() and event_ids:
        transaction.on_commit(partial(_publish_index, event_ids))


def _publish_index(event_ids: list[int]) -> None:
    # On a broker outage the database still has the events, and
    # `manage.py audit_reindex` catches up.
    publish(INDEX_EVENTS_TASK, kwargs={"event_ids": event_ids}, retry=False)
