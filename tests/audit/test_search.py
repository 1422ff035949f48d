"""The Elasticsearch back end of the partner audit log.

No Elasticsearch server can run where this suite runs, so these tests replace only
the client's HTTP node (its transport's lowest layer) with recorded responses: the
official client still builds every request and parses every answer.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from elastic_transport import ApiResponseMeta, BaseNode, HttpHeaders
from elastic_transport._node import NodeApiResponse

from audit import index
from audit.models import Category
from audit.query import decode_cursor, decode_page_cursor, encode_cursor
from auditlog import search
from auditlog.selectors import audit_filter_parse
from tenants.selectors import TenantScope

pytestmark = pytest.mark.django_db

PARTNER_QUERY = "/opsauditlogs/?timefrom=now-7d&category=SYSTEMAUDIT"
ES_CONTENT_TYPE = "application/vnd.elasticsearch+json;compatible-with=8"


class RecordedNode(BaseNode):
    """Answers each request with the next recorded response, and keeps the request."""

    requests: list[tuple[str, str, str]] = []
    responses: list[tuple[int, dict | str]] = []

    def perform_request(
        self, method, target, body=None, headers=None, request_timeout=None
    ):
        RecordedNode.requests.append((method, target, (body or b"").decode()))
        status, payload = RecordedNode.responses.pop(0)
        meta = ApiResponseMeta(
            status=status,
            http_version="1.1",
            headers=HttpHeaders(
                {
                    "x-elastic-product": "Elasticsearch",
                    "content-type": ES_CONTENT_TYPE,
                }
            ),
            duration=0.001,
            node=self.config,
        )
        data = payload if isinstance(payload, str) else json.dumps(payload)
        return NodeApiResponse(meta, data.encode())


@pytest.fixture
def elasticsearch(settings, monkeypatch):
    settings.ELASTIC_SEARCH_FQDN = "https://rafay-es-es-http:9200"
    settings.ES_USER_NAME = "elastic"
    settings.ES_PASSWORD = "es-secret"
    monkeypatch.setattr(index, "NODE_CLASS", RecordedNode)
    index._client.cache_clear()
    RecordedNode.requests = []
    RecordedNode.responses = []
    yield RecordedNode
    index._client.cache_clear()


def hit(event_id: int, stamp: str, **source) -> dict:
    millis = int(datetime.fromisoformat(stamp).timestamp() * 1000)
    return {
        "_index": "opsconsole-audit",
        "_id": str(event_id),
        "_score": None,
        "_source": {
            "id": event_id,
            "timestamp": stamp,
            "category": "SYSTEMAUDIT",
            "type": "email.sent",
            "actor": "system",
            "partner_id": 1,
            "partner": "acme",
            "organization_id": 2,
            "organization": "acme-prod",
            "summary": f"event {event_id}",
            "detail": {"email_id": event_id},
            **source,
        },
        "sort": [millis, event_id],
    }


def search_answer(hits: list[dict], total: int, relation: str = "eq") -> dict:
    return {
        "took": 2,
        "timed_out": False,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {
            "total": {"value": total, "relation": relation},
            "max_score": None,
            "hits": hits,
        },
    }


def test_search_is_enabled_only_with_all_three_variables(settings):
    settings.ELASTIC_SEARCH_FQDN = "https://es:9200"
    settings.ES_USER_NAME = "elastic"
    settings.ES_PASSWORD = ""
    assert not index.search_enabled()
    settings.ES_PASSWORD = "x"
    assert index.search_enabled()


def test_the_partner_query_is_built_for_elasticsearch_and_mapped_back(
    demo, login, elasticsearch
):
    elasticsearch.responses.append(
        (
            200,
            search_answer(
                [
                    hit(30, "2026-11-25T10:00:03+00:00"),
                    hit(29, "2026-11-25T10:00:02+00:00"),
                    hit(28, "2026-11-25T10:00:01+00:00"),
                ],
                total=12_000,
                relation="gte",
            ),
        )
    )
    response = login(demo["acme_admin"]).get(PARTNER_QUERY + "&limit=2")
    assert response.status_code == 200
    method, target, body = elasticsearch.requests[0]
    assert (method, target) == ("POST", "/opsconsole-audit/_search")
    query = json.loads(body)
    assert query["query"]["bool"]["filter"] == [
        {"term": {"partner_id": demo["acme"].pk}},
        # Date math passes through to Elasticsearch unchanged.
        {"range": {"timestamp": {"gte": "now-7d", "lte": "now"}}},
        {"term": {"category": "SYSTEMAUDIT"}},
    ]
    assert query["sort"] == [{"timestamp": "desc"}, {"id": "desc"}]
    assert (query["size"], query["from"], query["track_total_hits"]) == (3, 0, 10_000)
    answer = response.json()
    assert (answer["count"], answer["count_capped"]) == (10_000, True)
    assert [e["id"] for e in answer["result"]] == [30, 29]
    assert answer["result"][0] == {
        "id": 30,
        "timestamp": "2026-11-25T10:00:03Z",
        "category": "SYSTEMAUDIT",
        "type": "email.sent",
        "actor": "system",
        "partner": "acme",
        "organization": "acme-prod",
        "summary": "event 30",
        "detail": {"email_id": 30},
    }
    stamp, event_id = decode_cursor(answer["next_cursor"])
    assert event_id == 29 and stamp == datetime(2026, 11, 25, 10, 0, 2, tzinfo=UTC)


def test_the_cursor_becomes_search_after(demo, login, elasticsearch):
    elasticsearch.responses.append(
        (200, search_answer([hit(3, "2026-11-25T10:00:00+00:00")], 1))
    )
    elasticsearch.responses.append((200, search_answer([], 0)))
    client = login(demo["acme_admin"])
    cursor = encode_cursor(datetime(2026, 11, 25, 10, 0, 5, tzinfo=UTC), 41)
    client.get(
        "/opsauditlogs/",
        {"cursor": cursor, "organization": "acme-prod", "type": "email.failed"},
    )
    query = json.loads(elasticsearch.requests[0][2])
    assert query["search_after"] == [
        int(datetime(2026, 11, 25, 10, 0, 5, tzinfo=UTC).timestamp() * 1000),
        41,
    ]
    assert "from" not in query
    assert {"term": {"organization_id": demo["acme-prod"].pk}} in query["query"][
        "bool"
    ]["filter"]
    assert {"term": {"type": "email.failed"}} in query["query"]["bool"]["filter"]


def test_iso_and_epoch_times_are_sent_as_iso(demo, login, elasticsearch):
    elasticsearch.responses.append((200, search_answer([], 0)))
    login(demo["acme_admin"]).get(
        "/opsauditlogs/",
        {"timefrom": "1764064800", "timeto": "2026-11-26T00:00:00+01:00"},
    )
    window = json.loads(elasticsearch.requests[0][2])["query"]["bool"]["filter"][1]
    assert window == {
        "range": {
            "timestamp": {
                "gte": "2025-11-25T10:00:00+00:00",
                "lte": "2026-11-25T23:00:00+00:00",
            }
        }
    }


def test_when_elasticsearch_fails_the_database_answers(
    demo, login, elasticsearch, make_events
):
    make_events(4, partner=demo["acme"], organization=demo["acme-prod"])
    elasticsearch.responses.extend(
        [
            (
                503,
                {
                    "error": {"type": "unavailable", "reason": "cluster down"},
                    "status": 503,
                },
            )
        ]
        * 3
    )
    response = login(demo["acme_admin"]).get(PARTNER_QUERY)
    assert response.status_code == 200
    assert response.json()["count"] == 4
    assert elasticsearch.requests


def test_queries_filter_on_the_partner_recorded_on_each_event(demo):
    # An organization's query, and a partner's narrowed to one organization:
    # both on the partner recorded on the event and on the organization.
    organization = demo["acme-dev"]
    for scope, params in (
        (TenantScope(partner=demo["acme"], organization=organization), {}),
        (
            TenantScope(partner=demo["acme"], organization=None),
            {"organization": "acme-dev"},
        ),
    ):
        flt = audit_filter_parse(params, scope=scope)
        filters = search.search_body(scope=scope, flt=flt)["query"]["bool"]["filter"]
        assert {"term": {"partner_id": demo["acme"].pk}} in filters
        assert {"term": {"organization_id": organization.pk}} in filters


def test_organization_queries_always_read_the_database(
    demo, login, elasticsearch, make_events
):
    make_events(2, partner=demo["acme"], organization=demo["acme-prod"])
    response = login(demo["prod_admin"]).get(
        "/event/v1/auditlog?&filter.timefrom=now-1h&filter.category=SYSTEMAUDIT"
    )
    assert response.json()["count"] == 2
    assert elasticsearch.requests == []


def test_indexing_creates_the_index_and_bulk_loads_the_events(
    demo, elasticsearch, make_events
):
    events = make_events(2, partner=demo["acme"], organization=demo["acme-prod"])
    elasticsearch.responses.extend(
        [
            (404, {"error": "index_not_found_exception", "status": 404}),
            (
                200,
                {
                    "acknowledged": True,
                    "shards_acknowledged": True,
                    "index": "opsconsole-audit",
                },
            ),
            (
                200,
                {
                    "took": 5,
                    "errors": False,
                    "items": [
                        {
                            "index": {
                                "_index": "opsconsole-audit",
                                "_id": str(e.pk),
                                "status": 201,
                            }
                        }
                        for e in events
                    ],
                },
            ),
        ]
    )
    assert index.index_events([e.pk for e in events]) == 2
    (head, _, _), (put, _, mapping), (bulk, target, body) = elasticsearch.requests
    assert (head, put, bulk) == ("HEAD", "PUT", "PUT")
    assert json.loads(mapping)["mappings"]["properties"]["detail"]["enabled"] is False
    assert target.endswith("/_bulk")
    lines = [json.loads(line) for line in body.strip().splitlines()]
    actions, documents = lines[0::2], lines[1::2]
    assert {str(a["index"]["_id"]) for a in actions} == {str(e.pk) for e in events}
    assert {d["partner"] for d in documents} == {"acme"}
    assert {d["organization"] for d in documents} == {"acme-prod"}
    assert all(d["category"] == Category.SYSTEMAUDIT for d in documents)


def test_a_newer_cursor_reads_upwards_and_turns_the_page_over(
    demo, login, elasticsearch
):
    # given: Elasticsearch answers the ascending query oldest first
    elasticsearch.responses.append(
        (
            200,
            search_answer(
                [
                    hit(42, "2026-11-25T10:00:06+00:00"),
                    hit(43, "2026-11-25T10:00:07+00:00"),
                    hit(44, "2026-11-25T10:00:08+00:00"),
                ],
                30,
            ),
        )
    )
    cursor = encode_cursor(datetime(2026, 11, 25, 10, 0, 5, tzinfo=UTC), 41, newer=True)
    answer = (
        login(demo["acme_admin"])
        .get("/opsauditlogs/", {"cursor": cursor, "limit": "2"})
        .json()
    )
    query = json.loads(elasticsearch.requests[0][2])
    assert query["sort"] == [{"timestamp": "asc"}, {"id": "asc"}]
    assert query["search_after"][1] == 41
    # then: newest first, with cursors both ways (one more newer event is left)
    assert [event["id"] for event in answer["result"]] == [43, 42]
    assert decode_page_cursor(answer["prev_cursor"])[1:] == (43, True)
    assert decode_page_cursor(answer["next_cursor"])[1:] == (42, False)


def test_a_free_text_search_reads_the_database(demo, login, elasticsearch, make_events):
    make_events(2, partner=demo["acme"], organization=demo["acme-prod"])
    answer = login(demo["acme_admin"]).get("/opsauditlogs/", {"q": "event 1"}).json()
    assert [event["summary"] for event in answer["result"]] == ["event 1"]
    assert elasticsearch.requests == []
