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
