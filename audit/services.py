"""Writes to the audit log. Services call these; nothing records events by signal."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from audit.models import AuditEvent, Category

SYSTEM_ACTOR = "system"


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
    return event


def audit_events_record_bulk(events: Iterable[EventData]) -> list[AuditEvent]:
    """Append many events in one INSERT (the delivery engine's hot path)."""
    return AuditEvent.objects.bulk_create([_build(event) for event in events])
