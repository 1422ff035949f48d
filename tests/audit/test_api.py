"""The documented audit APIs: /event/v1/auditlog (org) and /opsauditlogs/ (partner)."""

from __future__ import annotations

import base64
import itertools
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.services import organization_update
from audit.models import AuditEvent, Category
from audit.query import AuditFilter
from tenants.models import User

pytestmark = pytest.mark.django_db

ORG_URL = "/event/v1/auditlog"
PARTNER_URL = "/opsauditlogs/"
DOCUMENTED_ORG_QUERY = (
    "/event/v1/auditlog?&filter.timefrom=now-1h&filter.offset=0&filter.limit=10"
    "&filter.category=SYSTEMAUDIT"
)
DOCUMENTED_PARTNER_QUERY = "/opsauditlogs/?timefrom=now-7d&category=SYSTEMAUDIT"


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_documented_org_query_with_the_stray_ampersand(demo, make_events):
    make_events(
        15,
        partner=demo["acme"],
        organization=demo["acme-prod"],
        step=timedelta(minutes=3),
    )
    make_events(3, partner=demo["acme"], organization=demo["acme-dev"])
    make_events(
        2, partner=demo["acme"], organization=demo["acme-prod"], category=Category.AUDIT
    )
    response = client_for(demo["prod_admin"]).get(DOCUMENTED_ORG_QUERY)
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {
        "count",
        "count_capped",
        "offset",
        "limit",
        "next_cursor",
        "prev_cursor",
        "result",
    }
    # 15 SYSTEMAUDIT events of acme-prod, 3 minutes apart: all in the last hour.
    assert (body["count"], body["count_capped"]) == (15, False)
    assert body["offset"] == 0 and body["limit"] == 10
    assert len(body["result"]) == 10
    assert body["next_cursor"]
    first = body["result"][0]
    assert set(first) == {
        "id",
        "timestamp",
        "category",
        "type",
        "actor",
        "partner",
        "organization",
        "summary",
        "detail",
    }
    assert {e["organization"] for e in body["result"]} == {"acme-prod"}
    assert {e["category"] for e in body["result"]} == {"SYSTEMAUDIT"}
    stamps = [e["timestamp"] for e in body["result"]]
    assert stamps == sorted(stamps, reverse=True)
    assert first["timestamp"].endswith("Z")


def test_the_org_query_counts_only_the_window(demo, make_events):
    make_events(
        15,
        partner=demo["acme"],
        organization=demo["acme-prod"],
        step=timedelta(minutes=6),
    )
    body = client_for(demo["prod_admin"]).get(DOCUMENTED_ORG_QUERY).json()
    # One event every 6 minutes: those of the last hour.
    assert body["count"] == 10
    assert body["count_capped"] is False


def test_the_documented_partner_query_sees_the_partner_and_all_its_orgs(
    demo, make_events
):
    make_events(2, partner=demo["acme"])
    make_events(2, partner=demo["acme"], organization=demo["acme-prod"])
    make_events(2, partner=demo["acme"], organization=demo["acme-dev"])
    make_events(2, partner=demo["globex"], organization=demo["globex-main"])
    response = client_for(demo["acme_admin"]).get(DOCUMENTED_PARTNER_QUERY)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 6
    assert {e["organization"] for e in body["result"]} == {
        None,
        "acme-prod",
        "acme-dev",
    }
    assert {e["partner"] for e in body["result"]} == {"acme"}


def test_partner_query_narrowed_to_one_organization(demo, make_events):
    make_events(2, partner=demo["acme"], organization=demo["acme-prod"])
    make_events(3, partner=demo["acme"], organization=demo["acme-dev"])
    body = (
        client_for(demo["acme_admin"])
        .get(PARTNER_URL, {"organization": "acme-dev"})
        .json()
    )
    assert body["count"] == 3
    other = client_for(demo["acme_admin"]).get(
        PARTNER_URL, {"organization": "globex-main"}
    )
    assert other.status_code == 400
    assert (
        "no organization 'globex-main' of yours"
        in other.json()["fields"]["organization"][0]
    )


def test_org_users_cannot_use_the_partner_api(demo):
    assert (
        client_for(demo["prod_admin"]).get(DOCUMENTED_PARTNER_QUERY).status_code == 404
    )


def test_tenants_see_only_their_own_events(demo, make_events):
    make_events(3, partner=demo["acme"], organization=demo["acme-prod"])
    make_events(4, partner=demo["globex"], organization=demo["globex-main"])
    assert (
        client_for(demo["globex_main_admin"]).get(DOCUMENTED_ORG_QUERY).json()["count"]
        == 4
    )
    assert client_for(demo["dev_admin"]).get(DOCUMENTED_ORG_QUERY).json()["count"] == 0
    assert (
        client_for(demo["globex_admin"]).get(DOCUMENTED_PARTNER_QUERY).json()["count"]
        == 4
    )


def test_anonymous_callers_get_401(db):
    assert Client().get(DOCUMENTED_ORG_QUERY).status_code == 401
    assert Client().get(DOCUMENTED_PARTNER_QUERY).status_code == 401


@pytest.mark.parametrize(
    ("query", "parameter", "message_part"),
    [
        ({"filter.timefrom": "yesterday"}, "filter.timefrom", "now-<n><unit>"),
        ({"filter.timefrom": "now-1y"}, "filter.timefrom", "is not a time"),
        ({"filter.timeto": "2026-11-25T10:00:00"}, "filter.timeto", "no time zone"),
        (
            {"filter.timefrom": "now", "filter.timeto": "now-1h"},
            "filter.timefrom",
            "after",
        ),
        ({"filter.limit": "0"}, "filter.limit", "from 1 to 500"),
        ({"filter.limit": "501"}, "filter.limit", "from 1 to 500"),
        ({"filter.limit": "ten"}, "filter.limit", "whole number"),
        ({"filter.offset": "-1"}, "filter.offset", "whole number"),
        ({"filter.offset": "10001"}, "filter.offset", "filter.cursor"),
        ({"filter.category": "EVERYTHING"}, "filter.category", "SYSTEMAUDIT, AUDIT"),
        ({"filter.cursor": "not-a-cursor!"}, "filter.cursor", "next_cursor"),
        ({"filter.type": "x" * 65}, "filter.type", "at most 64"),
        ({"filter.timeform": "now-1h"}, "filter.timeform", "Unknown parameter"),
        ({"timefrom": "now-1h"}, "timefrom", "Unknown parameter"),
        ({"filter.organization": "acme-prod"}, "filter.organization", "Unknown"),
    ],
)
def test_bad_org_parameters_are_400_naming_them(demo, query, parameter, message_part):
    response = client_for(demo["prod_admin"]).get(ORG_URL, query)
    assert response.status_code == 400
    body = response.json()
    assert parameter in body["fields"], body
    assert message_part in " ".join(body["fields"][parameter])


def test_bad_partner_parameters_are_400_naming_them(demo):
    response = client_for(demo["acme_admin"]).get(
        PARTNER_URL, {"timefrom": "last week"}
    )
    assert response.status_code == 400
    assert (
        "timefrom: 'last week' is not a time"
        in response.json()["fields"]["timefrom"][0]
    )


def test_offset_and_cursor_together_are_refused(demo, make_events):
    make_events(
        30,
        partner=demo["acme"],
        organization=demo["acme-prod"],
        step=timedelta(seconds=1),
    )
    first = client_for(demo["prod_admin"]).get(ORG_URL, {"filter.limit": "5"}).json()
    response = client_for(demo["prod_admin"]).get(
        ORG_URL,
        {
            "filter.limit": "5",
            "filter.offset": "5",
            "filter.cursor": first["next_cursor"],
        },
    )
    assert response.status_code == 400
    assert "not both" in response.json()["fields"]["filter.offset"][0]


def test_offset_and_cursor_paging_give_the_same_rows_in_the_same_order(
    demo, make_events
):
    # 57 events, in groups of 3 sharing a timestamp: ties must be broken by id.
    make_events(
        57,
        partner=demo["acme"],
        organization=demo["acme-prod"],
        step=timedelta(seconds=20),
        same_time_every=3,
    )
    client = client_for(demo["prod_admin"])
    by_offset = []
    only = {"filter.limit": "8", "filter.category": "SYSTEMAUDIT"}
    for offset in range(0, 60, 8):
        body = client.get(ORG_URL, {**only, "filter.offset": str(offset)}).json()
        by_offset.extend(e["id"] for e in body["result"])
    by_cursor = []
    params = only
    pages = 0
    while True:
        body = client.get(ORG_URL, params).json()
        by_cursor.extend(e["id"] for e in body["result"])
        pages += 1
        if not body["next_cursor"]:
            break
        params = {**only, "filter.cursor": body["next_cursor"]}
    assert len(by_offset) == 57 == len(set(by_offset))
    assert by_cursor == by_offset
    assert pages == 8


def test_filter_by_type_and_category(demo, make_events):
    make_events(
        2, partner=demo["acme"], organization=demo["acme-prod"], type="email.sent"
    )
    make_events(
        3, partner=demo["acme"], organization=demo["acme-prod"], type="email.failed"
    )
    make_events(
        4,
        partner=demo["acme"],
        organization=demo["acme-prod"],
        category=Category.AUDIT,
        type="smtp_config.updated",
    )
    client = client_for(demo["prod_admin"])
    # seed_demo recorded one AUDIT event of acme-prod (its SMTP feature went on).
    assert client.get(ORG_URL, {"filter.type": "email.failed"}).json()["count"] == 3
    assert client.get(ORG_URL, {"filter.category": "audit"}).json()["count"] == 5
    assert client.get(ORG_URL, {"filter.category": "SYSTEMAUDIT"}).json()["count"] == 5
    assert client.get(ORG_URL).json()["count"] == 10


def test_the_window_defaults_to_seven_days_and_can_end_earlier(demo, make_events):
    now = timezone.now()
    make_events(1, partner=demo["acme"], start=now - timedelta(days=8))
    make_events(1, partner=demo["acme"], start=now - timedelta(days=2))
    make_events(1, partner=demo["acme"], start=now - timedelta(minutes=5))
    client = client_for(demo["acme_admin"])
    only = {"category": "SYSTEMAUDIT"}
    assert client.get(PARTNER_URL, only).json()["count"] == 2
    assert client.get(PARTNER_URL, {**only, "timefrom": "now-30d"}).json()["count"] == 3
    earlier = {**only, "timefrom": "now-30d", "timeto": "now-1d"}
    assert client.get(PARTNER_URL, earlier).json()["count"] == 2


def test_the_count_is_capped(demo, make_events, monkeypatch):
    monkeypatch.setattr("auditlog.selectors.COUNT_CAP", 5)
    make_events(7, partner=demo["acme"], step=timedelta(seconds=1))
    body = client_for(demo["acme_admin"]).get(PARTNER_URL, {"category": "SYSTEMAUDIT"})
    body = body.json()
    assert (body["count"], body["count_capped"]) == (5, True)
    assert len(body["result"]) == 7


def test_a_window_over_the_cap_is_not_counted_again_while_recent(
    demo, make_events, monkeypatch, settings
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    monkeypatch.setattr("auditlog.selectors.COUNT_CAP", 5)
    make_events(7, partner=demo["acme"], step=timedelta(seconds=1))
    client = client_for(demo["acme_admin"])
    query = {"category": "SYSTEMAUDIT", "limit": "2"}
    # given: a first answer found the window over the cap
    first = client.get(PARTNER_URL, query).json()
    assert (first["count"], first["count_capped"]) == (5, True)
    # when: the same window is asked again
    with CaptureQueriesContext(connection) as captured:
        again = client.get(PARTNER_URL, query).json()
    # then: the same answer, and no count in the page's query
    assert (again["count"], again["count_capped"]) == (5, True)
    assert again["result"] == first["result"]
    assert not any("COUNT(" in q["sql"] for q in captured.captured_queries)
    # and: once that is no longer recent, the window is counted again
    settings.AUDIT_COUNT_CAPPED_SECONDS = 0
    with CaptureQueriesContext(connection) as captured:
        client.get(PARTNER_URL, query)
    assert any("COUNT(" in q["sql"] for q in captured.captured_queries)


def test_the_count_of_a_window_smaller_than_its_page_needs_no_count(demo, make_events):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    make_events(3, partner=demo["acme"], step=timedelta(seconds=1))
    client = client_for(demo["acme_admin"])
    with CaptureQueriesContext(connection) as captured:
        body = client.get(PARTNER_URL, {"category": "SYSTEMAUDIT"}).json()
    assert (body["count"], body["count_capped"], len(body["result"])) == (3, False, 3)
    # Past the end, the page cannot tell: the count is asked for.
    past = client.get(PARTNER_URL, {"category": "SYSTEMAUDIT", "offset": "5"}).json()
    assert (past["count"], past["result"]) == (3, [])
    assert len(captured) <= 3


def test_the_openapi_schema_has_both_audit_apis(demo, login):
    import json

    schema = json.loads(
        login(demo["acme_admin"]).get("/api/schema/", {"format": "json"}).content
    )
    assert "/event/v1/auditlog" in schema["paths"]
    assert "/opsauditlogs/" in schema["paths"]


@pytest.mark.parametrize(
    ("url", "parameter"),
    [
        (PARTNER_URL, "organization"),
        (PARTNER_URL, "type"),
        (PARTNER_URL, "timefrom"),
        (ORG_URL, "filter.type"),
        (ORG_URL, "filter.cursor"),
    ],
)
def test_nul_characters_are_refused_by_name_not_a_server_error(demo, url, parameter):
    # Found by fuzzing: PostgreSQL refuses NUL in text, which was a 500.
    user = demo["acme_admin"] if url == PARTNER_URL else demo["prod_admin"]
    response = client_for(user).get(url, {parameter: "acme\x00prod"})
    assert response.status_code == 400
    assert "must not contain NUL characters" in response.json()["fields"][parameter][0]


def hand_made_cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("url", "query", "parameter"),
    [
        (ORG_URL, {"filter.timefrom": "0001-01-01T00:00:00+01:00"}, "filter.timefrom"),
        (ORG_URL, {"filter.timeto": "9999-12-31T23:59:59-01:00"}, "filter.timeto"),
        (PARTNER_URL, {"timefrom": "0001-01-01T00:00:00+01:00"}, "timefrom"),
        (PARTNER_URL, {"timeto": "9999-12-31T23:59:59-01:00"}, "timeto"),
        (
            ORG_URL,
            {"filter.cursor": hand_made_cursor("9999-12-31T23:59:59-01:00|5")},
            "filter.cursor",
        ),
        (PARTNER_URL, {"cursor": hand_made_cursor("9999-12-31T23:59:59|5")}, "cursor"),
        (
            PARTNER_URL,
            {"cursor": hand_made_cursor(f"2026-11-25T10:00:00+00:00|{2**64}")},
            "cursor",
        ),
    ],
)
def test_times_outside_the_calendar_are_400_naming_them(demo, url, query, parameter):
    # Found by an outside review: these were OverflowErrors (a 500).
    user = demo["acme_admin"] if url == PARTNER_URL else demo["prod_admin"]
    response = client_for(user).get(url, query)
    assert response.status_code == 400
    body = response.json()
    assert list(body["fields"]) == [parameter]
    message = " ".join(body["fields"][parameter])
    assert "out of range" in message or "not a cursor this API gave" in message


@pytest.mark.parametrize("parameter", ["offset", "limit", "organization"])
def test_non_ascii_digits_are_refused_not_a_server_error(demo, parameter):
    # Found by fuzzing: "¹".isdigit() is true, but int("¹") fails (was a 500).
    response = client_for(demo["acme_admin"]).get(PARTNER_URL, {parameter: "¹"})
    assert response.status_code == 400
    assert parameter in response.json()["fields"]


def test_history_stays_with_the_partner_it_was_recorded_for(demo, make_events):
    # given: acme-dev's history under acme, then support moves it to globex
    organization = demo["acme-dev"]
    old = make_events(3, partner=demo["acme"], organization=organization)
    root = User.objects.create_superuser("root@ops.example", "Root-Pass-12345")
    organization_update(organization=organization, actor=root, partner=demo["globex"])
    new = make_events(2, partner=demo["globex"], organization=organization)
    old_ids = {event.pk for event in old}
    new_ids = {event.pk for event in new}
    moves = dict(
        AuditEvent.objects.filter(type="organization.updated").values_list(
            "partner_id", "pk"
        )
    )

    def ids(user, url, **params) -> set[int]:
        response = client_for(user).get(url, params)
        assert response.status_code == 200, response.content
        return {event["id"] for event in response.json()["result"]}

    # then: the new partner and the organization itself see only what happened
    # since the move (the move itself included)...
    globex = demo["globex_admin"]
    assert ids(globex, PARTNER_URL, organization="acme-dev", limit="500") == new_ids | {
        moves[demo["globex"].pk]
    }
    assert not ids(globex, PARTNER_URL, limit="500") & old_ids
    assert ids(demo["dev_admin"], ORG_URL, **{"filter.limit": "500"}) == new_ids | {
        moves[demo["globex"].pk]
    }
    # ...and the old partner keeps its history, without anything after the move.
    acme_ids = ids(demo["acme_admin"], PARTNER_URL, limit="500")
    assert old_ids | {moves[demo["acme"].pk]} <= acme_ids
    assert not acme_ids & (new_ids | {moves[demo["globex"].pk]})


def test_both_apis_search_free_text_and_page_back_with_prev_cursor(demo, make_events):
    made = make_events(25, partner=demo["acme"], organization=demo["acme-prod"])
    AuditEvent.objects.bulk_create(
        [
            AuditEvent(
                timestamp=event.timestamp,
                category=Category.SYSTEMAUDIT,
                type="email.queued",
                actor="system",
                partner=demo["acme"],
                organization=demo["acme-prod"],
                summary="Alert notification queued",
                detail={"recipient": f"oncall-{n}@acme.example", "subject": "Disk"},
            )
            for n, event in enumerate(made)
        ]
    )
    org = client_for(demo["prod_admin"])
    first = org.get(ORG_URL, {"filter.q": "ONCALL-", "filter.limit": "10"}).json()
    assert first["count"] == 25
    assert first["prev_cursor"] is None
    assert all("oncall-" in e["detail"]["recipient"] for e in first["result"])
    second = org.get(
        ORG_URL,
        {
            "filter.q": "oncall-",
            "filter.limit": "10",
            "filter.cursor": first["next_cursor"],
        },
    ).json()
    back = org.get(
        ORG_URL,
        {
            "filter.q": "oncall-",
            "filter.limit": "10",
            "filter.cursor": second["prev_cursor"],
        },
    ).json()
    assert [e["id"] for e in back["result"]] == [e["id"] for e in first["result"]]
    assert back["prev_cursor"] is None
    partner = client_for(demo["acme_admin"]).get(PARTNER_URL, {"q": "oncall-1"}).json()
    # oncall-1 and oncall-10 ... oncall-19
    assert partner["count"] == 11


@pytest.mark.parametrize("text", ["ab", "x" * 201])
def test_a_search_of_the_wrong_length_is_400_naming_q(demo, text):
    response = client_for(demo["acme_admin"]).get(PARTNER_URL, {"q": text})
    assert response.status_code == 400
    assert "q: search for 3 to 200 characters" in response.json()["fields"]["q"][0]


def test_pages_read_with_compiled_sql_equal_the_orms_for_every_shape(demo, make_events):
    # The page queries are compiled once per shape and run with each caller's
    # values: every shape must read exactly the rows the ORM would, and a
    # shape compiled for one tenant must answer another with its own rows.
    from auditlog.selectors import _page_rows, _read_page, audit_events
    from tenants.selectors import TenantScope

    make_events(
        30, partner=demo["acme"], organization=demo["acme-prod"], same_time_every=3
    )
    make_events(12, partner=demo["acme"], organization=demo["acme-dev"])
    make_events(7, partner=demo["acme"], type="email.failed")
    make_events(9, partner=demo["acme"], category=Category.AUDIT, type="user.login")
    make_events(11, partner=demo["globex"], organization=demo["globex-main"])
    now = timezone.now()
    middle = AuditEvent.objects.filter(partner=demo["acme"]).order_by("-timestamp")[20]
    scopes = [
        TenantScope(partner=demo["acme"], organization=None),
        TenantScope(partner=demo["acme"], organization=demo["acme-prod"]),
        TenantScope(partner=demo["globex"], organization=None),
        TenantScope(partner=demo["globex"], organization=demo["globex-main"]),
    ]
    filters = []
    for category in (None, Category.SYSTEMAUDIT, Category.AUDIT):
        for type_ in (None, "email.failed"):
            for cursor, newer in (
                (None, False),
                ((middle.timestamp, middle.pk), False),
                ((middle.timestamp, middle.pk), True),
            ):
                filters.append(
                    AuditFilter(
                        time_from=now - timedelta(days=7),
                        time_to=now,
                        category=category,
                        type=type_,
                        cursor=cursor,
                        newer=newer,
                        limit=5,
                        offset=0 if cursor else 3,
                    )
                )
    filters.append(
        AuditFilter(
            time_from=now - timedelta(days=7),
            time_to=now,
            organization_id=demo["acme-dev"].pk,
            limit=4,
        )
    )
    compared = 0
    for _ in range(2):
        for scope in scopes:
            for flt in filters:
                if flt.organization_id and scope.partner != demo["acme"]:
                    continue
                start = 0 if flt.cursor else flt.offset
                for counted, slugs in itertools.product((True, False), repeat=2):
                    orm = list(
                        _page_rows(
                            audit_events(scope=scope, flt=flt),
                            organization_slugs=slugs,
                            counted=counted,
                            cursor=flt.cursor,
                            newer=flt.newer,
                            start=start,
                            limit=flt.limit,
                        )
                    )
                    compiled = _read_page(
                        scope=scope,
                        flt=flt,
                        organization_slugs=slugs,
                        counted=counted,
                        start=start,
                    )
                    assert compiled == orm, (scope, flt, counted, slugs)
                    compared += bool(orm)
    assert compared > 200
