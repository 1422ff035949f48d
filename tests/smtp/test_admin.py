"""Support's view of the outbox: counters per level; bodies and passwords hidden."""

from __future__ import annotations

import pytest

from smtp.models import Email, EmailKind, EmailStatus, Level

pytestmark = pytest.mark.django_db


def make_email(number: int, **fields) -> Email:
    values = {
        "kind": EmailKind.ALERT,
        "recipient": f"r{number}@acme.example",
        "subject": "s",
        "body": "one-time link https://console.example/account/setup/secret-token/",
        "html_body": '<a href="https://console.example/account/setup/secret-token/">',
        "message_id": f"<m{number}@test>",
    }
    values.update(fields)
    return Email.objects.create(**values)


def test_support_sees_sent_and_failed_counts_per_level(demo, login):
    for number in range(3):
        make_email(number, status=EmailStatus.SENT, level_used=Level.PARTNER)
    make_email(10, status=EmailStatus.FAILED, level_used=Level.PARTNER)
    make_email(11, status=EmailStatus.SENT, level_used=Level.CONTROLLER)
    make_email(12, status=EmailStatus.QUEUED)
    page = login(demo["support"]).get("/admin/smtp/email/")
    assert page.status_code == 200
    html = page.content.decode()
    counters = html.split('id="email-counters"', 1)[1].split("</table>", 1)[0]
    assert (
        '<th scope="row">Partner</th><td>3</td><td>1</td><td>3</td><td>1</td><td>0</td>'
        in (counters.replace("\n", ""))
    )
    assert (
        '<th scope="row">Controller default</th><td>1</td><td>0</td>'
        in counters.replace("\n", "")
    )
    assert "Not tried yet" in counters


def test_counters_show_emails_delayed_by_a_limit_and_failed_over(demo, login):
    from datetime import timedelta

    from django.utils import timezone

    # given: partner-level emails held by limits, one of them failed over from
    # the organization; controller-level ones without either
    make_email(1, status=EmailStatus.SENT, level_used=Level.PARTNER, deferrals=2)
    make_email(
        2,
        status=EmailStatus.SENT,
        level_used=Level.PARTNER,
        deferrals=1,
        fallback_from=Level.ORGANIZATION,
    )
    make_email(3, status=EmailStatus.QUEUED, level_used=Level.PARTNER, deferrals=1)
    make_email(4, status=EmailStatus.SENT, level_used=Level.CONTROLLER)
    # older than the 7 days counted
    make_email(
        5,
        status=EmailStatus.SENT,
        level_used=Level.CONTROLLER,
        deferrals=4,
        fallback_from=Level.PARTNER,
        created_at=timezone.now() - timedelta(days=8),
    )
    # when
    html = login(demo["support"]).get("/admin/smtp/email/").content.decode()
    counters = html.split('id="email-counters"', 1)[1].split("</table>", 1)[0]
    counters = counters.replace("\n", "")
    # then: sent 24h, failed 24h, sent 7d, failed 7d, waiting, delayed, failed over
    assert ">Delayed by limit (7d)</th>" in counters
    assert ">Failed over (7d)</th>" in counters
    assert (
        '<th scope="row">Partner</th><td>2</td><td>0</td><td>2</td><td>0</td>'
        "<td>1</td><td>3</td><td>1</td></tr>"
    ) in counters
    assert (
        '<th scope="row">Controller default</th><td>1</td><td>0</td><td>1</td>'
        "<td>0</td><td>0</td><td>0</td><td>0</td></tr>"
    ) in counters


def test_support_never_sees_an_email_body(demo, login):
    email = make_email(1, status=EmailStatus.SENT, level_used=Level.PARTNER)
    client = login(demo["support"])
    assert "secret-token" not in client.get("/admin/smtp/email/").content.decode()
    detail = client.get(f"/admin/smtp/email/{email.pk}/change/")
    assert detail.status_code == 200
    assert "secret-token" not in detail.content.decode()


def test_the_support_admin_is_branded_and_names_smtp_configurations(demo, login):
    from smtp.models import Security, SmtpConfiguration

    SmtpConfiguration.objects.create(
        partner=demo["acme"],
        host="127.0.0.1",
        port=2525,
        security=Security.NONE,
        sender_email="alerts@acme.example",
    )
    client = login(demo["support"])
    index = client.get("/admin/").content.decode()
    assert "<title>Support | Ops Console support</title>" in index
    assert ">SMTP configurations<" in index
    assert "Smtp configurations" not in index
    listing = client.get("/admin/smtp/smtpconfiguration/").content.decode()
    assert "Select SMTP configuration to view" in listing
    # the organization's SMTP in effect, in words, not "(Off (plain text))"
    organization = demo["acme-prod"]
    page = client.get(f"/admin/tenants/organization/{organization.pk}/change/")
    html = page.content.decode()
    assert "Partner level: 127.0.0.1:2525, security Off (plain text)" in html
    assert "((" not in html


def test_the_support_admin_pages_have_a_first_heading_and_underlined_links(client):
    login_page = client.get("/admin/login/").content.decode()
    assert '<h1 class="login-title">Log in to Ops Console support</h1>' in login_page
    assert "/static/css/admin.css" in login_page
