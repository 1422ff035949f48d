"""The Audit Logs pages as a person reads them: names, words, search, pager, time."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import Category

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
