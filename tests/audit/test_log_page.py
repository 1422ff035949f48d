"""The Audit Logs pages as a person reads them: names, words, search, pager, time."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent, Category

pytestmark = pytest.mark.django_db

OPS = "/ops/audit-logs/"
WEB = "/console/audit-logs/"


def rows(html: str) -> list[str]:
    """The summaries of the events a page lists, top to bottom."""
    return re.findall(r'<td class="event-summary"[^>]*>([^<]*)</td>', html)


def test_partners_and_organizations_are_shown_by_name(demo, login, make_events):
    make_events(1, partner=demo["acme"], organization=demo["acme-prod"])
    html = login(demo["acme_admin"]).get(OPS).content.decode()
    assert demo["acme"].name in html
    assert demo["acme-prod"].name in html
    assert ">acme-prod<" not in html
    assert ">acme<" not in html


def test_a_custom_range_names_its_fields_as_the_form_does(demo, login):
    client = login(demo["prod_admin"])
    html = client.get(
        WEB, {"range": "custom", "from": "2026-11-25T12:00", "to": "2026-11-25T10:00"}
    ).content.decode()
    assert "From must not be after To." in html
    assert "timefrom" not in html
    assert "timeto" not in html


def test_the_default_window_is_the_last_24_hours(demo, login, make_events):
    make_events(
        1,
        partner=demo["acme"],
        organization=demo["acme-prod"],
        start=timezone.now() - timedelta(hours=23),
    )
    make_events(
        1,
        partner=demo["acme"],
        organization=demo["acme-prod"],
        start=timezone.now() - timedelta(hours=25),
    )
    html = login(demo["prod_admin"]).get(WEB, {"category": "SYSTEMAUDIT"}).content
    assert html.decode().count('class="event"') == 1
    assert 'value="24h" selected' in html.decode()


def test_the_email_verified_type_is_offered_by_the_filter(demo, login):
    html = login(demo["prod_admin"]).get(WEB).content.decode()
    assert '<option value="email.verified">' in html
    assert Category.SYSTEMAUDIT in html


def test_events_are_a_table_with_headers_and_an_expand_control_each(
    demo, login, make_events
):
    made = make_events(
        2,
        partner=demo["acme"],
        organization=demo["acme-prod"],
        type="smtp_config.health.recovered",
    )
    html = login(demo["acme_admin"]).get(OPS).content.decode()
    table = html[html.index('<table class="table audit-table"') :]
    headers = re.findall(r'<th scope="col"[^>]*>([^<]+)', table)
    assert [h.strip() for h in headers] == [
        "Time",
        "Event",
        "Summary",
        "Actor",
        "Organization",
    ]
    for event in made:
        detail = f"event-{event.pk}-detail"
        assert f'aria-controls="{detail}"' in html
        assert f'<tr class="event-detail-row" id="{detail}"' in html
    # open until the script runs: one control per event
    assert html.count('aria-expanded="true"') == html.count('<tbody class="event"')
    # a type wraps only after a dot, never inside a word
    assert '<code class="event-type">smtp_config.<wbr>health.<wbr>recovered' in html


def test_the_org_page_has_no_organization_column(demo, login, make_events):
    make_events(1, partner=demo["acme"], organization=demo["acme-prod"])
    html = login(demo["prod_admin"]).get(WEB).content.decode()
    assert '<th scope="col">Organization</th>' not in html
    assert 'colspan="5"' in html


def link(html: str, anchor_id: str) -> str | None:
    found = re.search(rf'<a class="button" href="([^"]+)" id="{anchor_id}"', html)
    return found[1].replace("&amp;", "&") if found else None


def summaries(html: str) -> list[str]:
    return [s.strip() for s in rows(html)]


def test_the_pager_goes_older_and_back_newer_by_keyset(demo, login, make_events):
    # given: 120 events, five of them at each second (ties broken by id)
    make_events(
        120,
        partner=demo["acme"],
        organization=demo["acme-prod"],
        step=timedelta(seconds=1),
        same_time_every=5,
    )
    newest_first = list(
        AuditEvent.objects.filter(
            organization=demo["acme-prod"], category="SYSTEMAUDIT"
        )
        .order_by("-timestamp", "-id")
        .values_list("summary", flat=True)
    )
    assert len(newest_first) == 120
    client = login(demo["prod_admin"])
    first = client.get(WEB, {"category": "SYSTEMAUDIT"}).content.decode()
    assert summaries(first) == newest_first[:50]
    assert link(first, "newer") is None

    # when: Older twice, then Newer twice
    second = client.get(WEB + link(first, "older")).content.decode()
    third = client.get(WEB + link(second, "older")).content.decode()
    assert summaries(second) == newest_first[50:100]
    assert summaries(third) == newest_first[100:]
    assert link(third, "older") is None
    back = client.get(WEB + link(third, "newer")).content.decode()
    top = client.get(WEB + link(back, "newer")).content.decode()

    # then: the same pages as on the way down, and none newer than the first
    assert summaries(back) == summaries(second)
    assert summaries(top) == summaries(first)
    assert link(top, "newer") is None
    assert link(top, "older") is not None


def search_events(demo, make_events):
    """Events whose text lives in each searched place, and one that matches none."""
    from audit.services import EventData, audit_events_record_bulk

    scope = {"partner_id": demo["acme"].pk, "organization_id": demo["acme-prod"].pk}
    audit_events_record_bulk(
        [
            EventData(
                category=Category.SYSTEMAUDIT,
                type="email.queued",
                summary="Alert notification queued",
                detail={"recipient": "Night-Shift@Acme.example", "subject": "Disk"},
                **scope,
            ),
            EventData(
                category=Category.SYSTEMAUDIT,
                type="email.sent",
                summary="Alert notification sent",
                detail={"recipient": "ops@acme.example", "subject": "Quarterly 100%"},
                **scope,
            ),
            EventData(
                category=Category.AUDIT,
                type="smtp_config.updated",
                summary="SMTP configuration updated",
                actor="night-shift-lead@acme.example",
                **scope,
            ),
            EventData(
                category=Category.AUDIT,
                type="smtp_config.updated",
                summary="Port changed for the night shift",
                **scope,
            ),
        ]
    )
    make_events(3, partner=demo["acme"], organization=demo["acme-prod"])


@pytest.mark.parametrize(
    ("text", "found"),
    [
        # the recipient, in any letter case
        ("night-shift@acme", ["Alert notification queued"]),
        # the actor and the summary as well as the recipient
        (
            "NIGHT",
            [
                "Port changed for the night shift",
                "SMTP configuration updated",
                "Alert notification queued",
            ],
        ),
        # the email's subject; % is text, not a wildcard
        ("y 100%", ["Alert notification sent"]),
        ("00%", ["Alert notification sent"]),
        ("nobody-has-this", []),
    ],
)
def test_search_finds_text_in_recipient_actor_summary_and_subject(
    demo, login, make_events, text, found
):
    search_events(demo, make_events)
    html = login(demo["prod_admin"]).get(WEB, {"q": text}).content.decode()
    assert summaries(html) == found
    assert f'value="{text}"' in html.replace("&#x27;", "'")


def test_search_combines_with_the_other_filters(demo, login, make_events):
    search_events(demo, make_events)
    client = login(demo["acme_admin"])
    html = client.get(OPS, {"q": "night", "category": "AUDIT"}).content.decode()
    assert summaries(html) == [
        "Port changed for the night shift",
        "SMTP configuration updated",
    ]
    other = client.get(OPS, {"q": "night", "organization": "acme-dev"}).content
    assert summaries(other.decode()) == []


def test_a_search_too_short_names_the_field(demo, login):
    html = login(demo["prod_admin"]).get(WEB, {"q": "ab"}).content.decode()
    assert "Search: search for 3 to 200 characters" in html
    assert '<tbody class="event"' not in html


def test_search_pages_in_both_directions(demo, login, make_events):
    from audit.services import EventData, audit_events_record_bulk

    audit_events_record_bulk(
        [
            EventData(
                category=Category.SYSTEMAUDIT,
                type="email.sent",
                summary=f"Alert notification to pager-{n}@acme.example sent",
                detail={"recipient": f"pager-{n}@acme.example"},
                partner_id=demo["acme"].pk,
                organization_id=demo["acme-prod"].pk,
            )
            for n in range(60)
        ]
    )
    make_events(60, partner=demo["acme"], organization=demo["acme-prod"])
    client = login(demo["prod_admin"])
    first = client.get(WEB, {"q": "pager-"}).content.decode()
    assert "60 events match" in first
    assert len(summaries(first)) == 50
    second = client.get(WEB + link(first, "older")).content.decode()
    assert len(summaries(second)) == 10
    assert all("pager-" in summary for summary in summaries(second))
    back = client.get(WEB + link(second, "newer")).content.decode()
    assert summaries(back) == summaries(first)


def test_a_custom_range_is_read_in_the_viewers_time_zone(demo, login, make_events):
    # given: one event at 10:30 UTC, which is 19:30 in Tokyo (UTC+9)
    from datetime import UTC, datetime

    make_events(
        1,
        partner=demo["acme"],
        organization=demo["acme-prod"],
        start=datetime(2026, 11, 20, 10, 30, tzinfo=UTC),
    )
    client = login(demo["prod_admin"])

    def shown(zone: str, start: str, end: str) -> int:
        query = {"range": "custom", "from": start, "to": end, "tz": zone}
        return client.get(WEB, query).content.decode().count('<tbody class="event"')

    # then: the same wall-clock range finds it in Tokyo, not in UTC
    assert shown("Asia/Tokyo", "2026-11-20T19:00", "2026-11-20T20:00") == 1
    assert shown("UTC", "2026-11-20T19:00", "2026-11-20T20:00") == 0
    assert shown("UTC", "2026-11-20T10:00", "2026-11-20T11:00") == 1


def test_the_page_names_the_zone_of_the_custom_range(demo, login):
    client = login(demo["prod_admin"])
    html = client.get(WEB, {"range": "custom", "tz": "Asia/Tokyo"}).content.decode()
    assert (
        'From <span class="zone-note">(<span data-zone-name>Asia/Tokyo</span>)' in html
    )
    # an unknown zone is read as UTC, and the page says so
    html = client.get(WEB, {"range": "custom", "tz": "Mars/Olympus"}).content.decode()
    assert 'To <span class="zone-note">(<span data-zone-name>UTC</span>)' in html


def test_times_carry_their_exact_utc_for_the_browser_to_localise(
    demo, login, make_events
):
    (event,) = make_events(1, partner=demo["acme"], organization=demo["acme-prod"])
    html = login(demo["prod_admin"]).get(WEB).content.decode()
    stamp = event.timestamp.strftime("%Y-%m-%dT%H:%M:%S.%f")
    utc = event.timestamp.strftime("%Y-%m-%d %H:%M:%S.%f")
    assert f'<time datetime="{stamp}Z" title="{utc} UTC" data-local-time>' in html


def test_the_filters_messages_name_the_fields_as_the_form_does(demo, login):
    client = login(demo["acme_admin"])
    html = client.get(OPS, {"organization": "no-such-org", "q": "ab"}).content.decode()
    assert "Organization: no organization &#x27;no-such-org&#x27; of yours" in html
    assert "Search: search for 3 to 200 characters" in html
