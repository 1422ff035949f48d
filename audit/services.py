"""Writes to the audit log. Services call these; nothing records events by signal."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.index import search_enabled
from audit.models import AuditEvent, Category
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


def _build(event: EventData) -> AuditEvent:
    return AuditEvent(
        timestamp=timezone.now(),
        category=event.category,
        type=event.type,
        actor=event.actor[:254],
        partner_id=event.partner_id,
        organization_id=event.organization_id,
        summary=event.summary[:300],
        detail=event.detail,
    )


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


def audit_events_record_bulk(events: Iterable[EventData]) -> list[AuditEvent]:
    """Append many events in one INSERT (the delivery engine's hot path)."""
    created = AuditEvent.objects.bulk_create([_build(event) for event in events])
    audit_events_index_after_commit([event.pk for event in created])
    return created


def audit_events_index_after_commit(event_ids: list[int]) -> None:
    """With Elasticsearch configured, index the events once they are committed
    (for events written in a statement of their own, like the outbox's)."""
    if search_enabled() and event_ids:
        transaction.on_commit(partial(_publish_index, event_ids))


def _publish_index(event_ids: list[int]) -> None:
    # On a broker outage the database still has the events, and
    # `manage.py audit_reindex` catches up.
    publish(INDEX_EVENTS_TASK, kwargs={"event_ids": event_ids}, retry=False)
