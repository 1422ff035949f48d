"""Partner-level audit queries on Elasticsearch (see ``audit.index``).

Date math such as ``now-7d`` passes through; deep pages use ``search_after``. If
Elasticsearch fails, the caller reads the same page from the database.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from audit.index import index_name, search_client
from audit.query import COUNT_CAP, AuditFilter, AuditPage, encode_cursor
from tenants.selectors import TenantScope

logger = logging.getLogger(__name__)


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
    # A page of newer events reads upwards from its cursor, then is turned over.
    order = "asc" if flt.cursor is not None and flt.newer else "desc"
    body: dict[str, Any] = {
        "query": {"bool": {"filter": filters}},
        "sort": [{"timestamp": order}, {"id": order}],
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
    if flt.cursor is not None and flt.newer:
        hits = hits[::-1]
        older, newer = bool(hits), more
    else:
        older, newer = more, flt.cursor is not None
    next_cursor = _cursor(hits[-1]) if older and hits else None
    prev_cursor = _cursor(hits[0], newer=True) if newer and hits else None
    return AuditPage(
        count=min(total["value"], COUNT_CAP),
        count_capped=total["relation"] == "gte" or total["value"] > COUNT_CAP,
        offset=flt.offset,
        limit=flt.limit,
        next_cursor=next_cursor,
        events=[_event_from_hit(hit) for hit in hits],
        prev_cursor=prev_cursor,
    )


def _cursor(hit: dict[str, Any], *, newer: bool = False) -> str:
    millis, event_id = hit["sort"]
    return encode_cursor(
        datetime.fromtimestamp(millis / 1000, tz=UTC), event_id, newer=newer
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
