"""Elasticsearch for the audit log (optional; the documented ES_* variables).

When ``ELASTIC_SEARCH_FQDN``, ``ES_USER_NAME`` and ``ES_PASSWORD`` are all set,
every event is also indexed in Elasticsearch by a Celery task, and partner-level
queries read from it (date math such as ``now-7d`` passes through; deep pages use
``search_after``). The database stays the source of truth: if Elasticsearch fails,
the same page comes from the database.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from django.conf import settings

from audit.models import AuditEvent
from audit.query import COUNT_CAP, AuditFilter, AuditPage, encode_cursor
from tenants.selectors import TenantScope

logger = logging.getLogger(__name__)

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


def _date(text: str, parsed: datetime) -> str:
    # Date math ("now-7d") passes through; anything else as ISO 8601, since
    # Elasticsearch would read bare epoch seconds as milliseconds.
    return text if text.startswith("now") else parsed.astimezone(UTC).isoformat()


def search_body(*, scope: TenantScope, flt: AuditFilter) -> dict[str, Any]:
    """The query for one page: always on the partner recorded on each event."""
    filters: list[dict[str, Any]] = [
        {"term": {"partner_id": scope.partner.pk}},
        {
            "range": {
                "timestamp": {
                    "gte": _date(flt.time_from_text, flt.time_from),
                    "lte": _date(flt.time_to_text, flt.time_to),
                }
            }
        },
    ]
    if flt.category:
        filters.append({"term": {"category": flt.category}})
    if flt.type:
        filters.append({"term": {"type": flt.type}})
    organization_id = (
        scope.organization.pk if scope.organization is not None else flt.organization_id
    )
    if organization_id is not None:
        filters.append({"term": {"organization_id": organization_id}})
    body: dict[str, Any] = {
        "query": {"bool": {"filter": filters}},
        "sort": [{"timestamp": "desc"}, {"id": "desc"}],
        "size": flt.limit + 1,
        "track_total_hits": COUNT_CAP,
    }
    if flt.cursor is not None:
        stamp, event_id = flt.cursor
        body["search_after"] = [int(stamp.timestamp() * 1000), event_id]
    else:
        body["from"] = flt.offset
    return body


def _event_from_hit(hit: dict[str, Any]) -> dict[str, Any]:
    source = hit["_source"]
    stamp = datetime.fromisoformat(source["timestamp"]).astimezone(UTC)
    return {
        "id": source["id"],
        "timestamp": stamp.isoformat().replace("+00:00", "Z"),
        "category": source["category"],
        "type": source["type"],
        "actor": source["actor"],
        "partner": source.get("partner"),
        "organization": source.get("organization"),
        "summary": source["summary"],
        "detail": source.get("detail") or {},
    }


def page_from_response(response: dict[str, Any], *, flt: AuditFilter) -> AuditPage:
    """An Elasticsearch answer in the API's shape."""
    hits = response["hits"]["hits"]
    total = response["hits"]["total"]
    more = len(hits) > flt.limit
    hits = hits[: flt.limit]
    next_cursor = None
    if more:
        millis, event_id = hits[-1]["sort"]
        next_cursor = encode_cursor(
            datetime.fromtimestamp(millis / 1000, tz=UTC), event_id
        )
    return AuditPage(
        count=min(total["value"], COUNT_CAP),
        count_capped=total["relation"] == "gte" or total["value"] > COUNT_CAP,
        offset=flt.offset,
        limit=flt.limit,
        next_cursor=next_cursor,
        events=[_event_from_hit(hit) for hit in hits],
    )


def audit_event_page_search(
    *, scope: TenantScope, flt: AuditFilter
) -> AuditPage | None:
    """A partner-level page from Elasticsearch, or ``None`` if it cannot answer."""
    from elastic_transport import TransportError
    from elasticsearch import ApiError

    body = search_body(scope=scope, flt=flt)
    try:
        response = search_client().search(index=index_name(), **body)
    except (ApiError, TransportError) as error:
        logger.warning(
            "Elasticsearch did not answer the audit query; reading the database: %s",
            error,
        )
        return None
    return page_from_response(dict(response), flt=flt)
