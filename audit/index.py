"""Elasticsearch for the audit log (optional; the documented ES_* variables).

When ``ELASTIC_SEARCH_FQDN``, ``ES_USER_NAME`` and ``ES_PASSWORD`` are all set,
every event is also indexed in Elasticsearch by a Celery task, and partner-level
queries read from it (``auditlog.search``). The database stays the source of truth:
the index is a copy, and ``manage.py audit_reindex`` fills it again.

This module is the connection, the mapping and the writing; recording an event
needs it, so it imports nothing outside the audit app and ``core``.
"""

from __future__ import annotations

from datetime import UTC
from functools import lru_cache
from typing import Any

from django.conf import settings

from audit.models import AuditEvent

# The transport's HTTP node; tests replace it with recorded responses, since no
# Elasticsearch server runs where the suite runs.
NODE_CLASS: Any = "urllib3"

MAPPINGS = {
    "properties": {
        "id": {"type": "long"},
        "timestamp": {"type": "date"},
        "category": {"type": "keyword"},
        "type": {"type": "keyword"},
        "actor": {"type": "keyword"},
        "partner_id": {"type": "long"},
        "partner": {"type": "keyword"},
        "organization_id": {"type": "long"},
        "organization": {"type": "keyword"},
        "summary": {"type": "text"},
        # Kept, not indexed: its keys vary by event type.
        "detail": {"type": "object", "enabled": False},
    }
}


def search_enabled() -> bool:
    """Whether Elasticsearch is configured: all three ES variables are set."""
    return bool(
        settings.ELASTIC_SEARCH_FQDN and settings.ES_USER_NAME and settings.ES_PASSWORD
    )


def index_name() -> str:
    return settings.ES_AUDIT_INDEX


@lru_cache(maxsize=4)
def _client(url: str, user: str, password: str, ca_certs: str, node_class: Any):
    from elasticsearch import Elasticsearch

    return Elasticsearch(
        url,
        basic_auth=(user, password),
        ca_certs=ca_certs or None,
        request_timeout=settings.ES_TIMEOUT,
        max_retries=1,
        retry_on_timeout=False,
        node_class=node_class,
    )


def search_client():
    """The client for the configured cluster (built on first use, not at import)."""
    return _client(
        settings.ELASTIC_SEARCH_FQDN,
        settings.ES_USER_NAME,
        settings.ES_PASSWORD,
        settings.ES_CA_CERTS,
        NODE_CLASS,
    )


def event_document(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.pk,
        "timestamp": event.timestamp.astimezone(UTC).isoformat(),
        "category": event.category,
        "type": event.type,
        "actor": event.actor,
        "partner_id": event.partner_id,
        "partner": event.partner.slug if event.partner_id else None,
        "organization_id": event.organization_id,
        "organization": event.organization.slug if event.organization_id else None,
        "summary": event.summary,
        "detail": event.detail,
    }


def index_events(event_ids: list[int]) -> int:
    """Index these events (idempotent: the event id is the document id)."""
    from elasticsearch import helpers

    client = search_client()
    if not client.indices.exists(index=index_name()):
        client.indices.create(index=index_name(), mappings=MAPPINGS)
    events = AuditEvent.objects.filter(pk__in=event_ids).select_related(
        "partner", "organization"
    )
    actions = (
        {"_index": index_name(), "_id": event.pk, "_source": event_document(event)}
        for event in events
    )
    indexed, _errors = helpers.bulk(client, actions, raise_on_error=True)
    return indexed
