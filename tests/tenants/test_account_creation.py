"""ACCOUNT_CREATION_STRATEGY: AUTO needs a password, VERIFY sends a one-time link."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django.test import Client

from audit.models import AuditEvent
from smtp.models import Email, EmailKind, EmailStatus, Security, SmtpConfiguration
from tenants.models import Organization, User
from tests.support.auth import can_log_in, log_in
from tests.support.smtp_servers import SmtpTestServer
from tests.support.worker import wait_until

NEW_URL = "/ops/organizations/new/"


@pytest.fixture
def strategy(monkeypatch):
    def set_strategy(value: str) -> None:
        monkeypatch.setenv("ACCOUNT_CREATION_STRATEGY", value)

    return set_strategy


def new_org(**changes) -> dict[str, str]:
    values = {
        "name": "Acme Staging",
        "slug": "",
        "admin_email": "admin@acme-staging.example",
        "admin_password": "",
    }
    values.update(changes)
    return values


@pytest.mark.django_db
def test_auto_requires_a_password_and_creates_nothing_without_it(demo, login, strategy):
    strategy("AUTO")
    client = login(demo["acme_admin"])
    page = client.get(NEW_URL).content.decode()
    assert "Set the admin's first password here" in page
    assert "ACCOUNT_CREATION_STRATEGY" not in page
    response = client.post(NEW_URL, new_org())
    assert response.status_code == 200
    assert "Password is required: new admins get their first password here" in (
        response.content.decode()
    )
    assert not Organization.objects.filter(slug="acme-staging").exists()
    assert not User.objects.filter(email="admin@acme-staging.example").exists()


@pytest.mark.django_db
def test_auto_creates_the_organization_and_admin_and_sends_nothing(
    demo, login, strategy
):
    strategy("AUTO")
    response = login(demo["acme_admin"]).post(
        NEW_URL, new_org(admin_password="Staging-Admin-Pass-7")
    )
    assert response.status_code == 302
    organization = Organization.objects.get(slug="acme-staging")
    assert organization.partner == demo["acme"]
    assert not organization.smtp_configuration_enabled
    assert can_log_in("admin@acme-staging.example", "Staging-Admin-Pass-7")
    admin = User.objects.get(email="admin@acme-staging.example")
    assert admin.organization == organization
    assert not Email.objects.exists()
    event = AuditEvent.objects.get(type="organization.created")
    assert event.detail["account_creation_strategy"] == "AUTO"
    assert "Staging-Admin-Pass-7" not in str(event.detail)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "field_text"),
    [
        ({"name": ""}, "Name is required"),
        ({"slug": "acme-prod"}, "The identifier acme-prod is taken"),
        ({"admin_email": "not-an-address"}, "Admin email must be an email address"),
        (
            {"admin_email": "admin@☃.example"},
            "☃.example is not a valid international domain name",
        ),
        ({"admin_email": "partner-admin@acme.example"}, "already exists"),
        ({"admin_password": "short"}, "too short"),
    ],
)
def test_bad_input_names_the_field_and_creates_nothing(
    demo, login, strategy, changes, field_text
):
    strategy("AUTO")
    before = (Organization.objects.count(), User.objects.count())
    data = new_org(admin_password="Staging-Admin-Pass-7")
    data.update(changes)
    response = login(demo["acme_admin"]).post(NEW_URL, data)
    assert response.status_code == 200
    assert field_text in response.content.decode()
    assert (Organization.objects.count(), User.objects.count()) == before


@pytest.mark.django_db
def test_verify_refuses_a_password(demo, login, strategy):
    strategy("VERIFY")
    response = login(demo["acme_admin"]).post(
        NEW_URL, new_org(admin_password="Staging-Admin-Pass-7")
    )
    assert response.status_code == 200
    assert "Leave Password empty" in response.content.decode()
    assert not Organization.objects.filter(slug="acme-staging").exists()


def link_from(body: str) -> str:
    match = re.search(r"https?://\S+/account/setup/\S+/", body)
    assert match, body
    return urlsplit(match.group(0)).path


def test_verify_sends_a_one_time_link_that_sets_the_password_once(
    worker, demo, strategy
):
    strategy("VERIFY")
    server = SmtpTestServer()
    try:
        SmtpConfiguration.objects.create(
            partner=demo["acme"],
            host="127.0.0.1",
            port=server.port,
            security=Security.NONE,
        )
        partner_admin = Client()
        partner_admin.force_login(demo["acme_admin"])
        response = partner_admin.post(NEW_URL, new_org())
        assert response.status_code == 302
        admin = User.objects.get(email="admin@acme-staging.example")
        assert not admin.has_usable_password()
        wait_until(
            lambda: Email.objects.filter(
                kind=EmailKind.PASSWORD_SETUP, status=EmailStatus.SENT
            ).exists(),
            timeout=30,
        )
        assert len(server.messages) == 1
        received = server.messages[0]
        assert received.rcpt_tos == ["admin@acme-staging.example"]
        assert received.message["Subject"] == "Set your password for Acme Staging"
        link = link_from(received.message.get_body(("plain",)).get_content())
    finally:
        server.stop()

    newcomer = Client()
    form_page = newcomer.get(link, follow=True)
    assert "Set your password" in form_page.content.decode()
    set_url = form_page.redirect_chain[-1][0]
    done = newcomer.post(
        set_url,
        {
            "new_password1": "Fresh-Staging-Pass-3",
            "new_password2": "Fresh-Staging-Pass-3",
        },
        follow=True,
    )
    assert "Password set. Log in with your new password." in done.content.decode()
    logged_in = Client()
    assert log_in(logged_in, "admin@acme-staging.example", "Fresh-Staging-Pass-3")
    assert logged_in.get("/console/audit-logs/").status_code == 200
    # The link does not work a second time.
    again = Client().get(link, follow=True)
    assert "This link no longer works" in again.content.decode()
    assert AuditEvent.objects.filter(type="user.password_set").count() == 1


@pytest.mark.django_db
def test_an_expired_link_no_longer_works(demo, settings):
    from tenants.services import one_time_link

    user = demo["prod_admin"]
    link = urlsplit(one_time_link(user=user, route="account-setup")).path
    settings.PASSWORD_RESET_TIMEOUT = -1
    page = Client().get(link, follow=True)
    assert "This link no longer works" in page.content.decode()
