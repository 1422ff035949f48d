"""Celery tasks of the audit app."""

from __future__ import annotations

from celery import shared_task

from audit.index import index_events
from audit.services import INDEX_EVENTS_TASK


@shared_task(name=INDEX_EVENTS_TASK, ignore_result=True)
def index_events_task(*, event_ids: list[int]) -> None:
    """Copy these events into Elasticsearch (the database keeps the originals)."""
    index_events(event_ids)
