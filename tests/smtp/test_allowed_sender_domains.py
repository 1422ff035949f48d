"""Allowed sender domains: a partner's organizations (and the partner itself)
send only as the domains it allows."""

from __future__ import annotations

import json

import pytest

from audit.models import AuditEvent
from smtp.enums import Level, Security
from smtp.models import Email, PartnerEmailIdentity, SmtpConfiguration
from smtp.selectors import smtp_config_effective

pytestmark = pytest.mark.django_db

API_URL = "/event/v1/email/config"
VERIFY_URL = "/event/v1/email/config/verification"
PAGE_URL = "/ops/email-identity/"
WEB_URL = "/console/infrastructure/system/settings/smtp/"


def allow(partner, *domains: str) -> None:
    PartnerEmailIdentity.objects.update_or_create(
        partner=partner, defaults={"allowed_sender_domains": list(domains)}
    )


def post_config(client, **smtp_config):
    body = {"host": "smtp.acme.example", "port": 587, **smtp_config}
    return client.post(
        API_URL,
        json.dumps({"email_config": {"smtp_config": body}}),
        content_type="application/json",
    )


def rows() -> list[tuple]:
    return list(
        SmtpConfiguration.objects.order_by("pk").values_list(
            "host", "sender_email", "reply_to", "bounce_address"
        )
    )


def test_an_org_sender_outside_the_allowed_domains_is_a_400_naming_the_field(
    demo, login
):
    # given: acme allows only acme.example, and the organization has a configuration
    allow(demo["acme"], "acme.example")
    client = login(demo["prod_admin"])
    assert post_config(client, sender_email="noreply@acme.example").status_code == 201
    before = rows()
    # when: it tries to send as another domain
    response = post_config(client, sender_email="noreply@evil.example")
    # then: 400 naming sender_email and the allowed domains; nothing changed
    assert response.status_code == 400
    fields = response.json()["fields"]
    assert list(fields) == ["email_config.smtp_config.sender_email"]
    message = " ".join(fields["email_config.smtp_config.sender_email"])
    assert "noreply@evil.example" in message and "acme.example" in message
    assert rows() == before


@pytest.mark.parametrize(
    ("field", "address"),
    [("reply_to", "help@evil.example"), ("bounce_address", "b@evil.example")],
)
def test_reply_to_and_bounce_address_must_be_at_an_allowed_domain(
    demo, login, field, address
):
    allow(demo["acme"], "acme.example")
    response = post_config(login(demo["prod_admin"]), **{field: address})
    assert response.status_code == 400
    assert list(response.json()["fields"]) == [f"email_config.smtp_config.{field}"]
    assert not SmtpConfiguration.objects.exists()


def test_an_empty_sender_is_checked_as_the_username_it_sends_as(demo, login):
    allow(demo["acme"], "acme.example")
    response = post_config(
        login(demo["prod_admin"]), username="mailer@evil.example", password="pw"
    )
    assert response.status_code == 400
    message = " ".join(
        response.json()["fields"]["email_config.smtp_config.sender_email"]
    )
    assert "username" in message and "mailer@evil.example" in message


def test_a_wildcard_accepts_subdomains(demo, login):
    allow(demo["acme"], "*.acme.example")
    client = login(demo["prod_admin"])
    response = post_config(
        client,
        sender_email="noreply@eu.acme.example",
        bounce_address="bounces@mail.eu.acme.example",
    )
    assert response.status_code == 201
    # the wildcard is for subdomains only: list acme.example to allow it too
    assert post_config(client, sender_email="x@acme.example").status_code == 400


def test_no_allowed_domains_means_any_domain(demo, login):
    response = post_config(login(demo["prod_admin"]), sender_email="x@other.example")
    assert response.status_code == 201


def test_the_web_form_names_the_field_and_the_allowed_domains(demo, login):
    allow(demo["acme"], "acme.example", "*.acme.example")
    response = login(demo["prod_admin"]).post(
        WEB_URL,
        {
            "action": "save",
            "host": "smtp.prod.example",
            "port": "587",
            "security": "starttls",
            "retries": "3",
            "sender_email": "noreply@evil.example",
        },
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "The configuration was not saved" in html
    assert "outside the partner&#x27;s allowed sender domains" in html
    assert "acme.example, *.acme.example" in html
    assert not SmtpConfiguration.objects.exists()


def test_a_test_email_from_an_outside_sender_is_refused(demo, login):
    allow(demo["acme"], "acme.example")
    SmtpConfiguration.objects.create(
        partner=demo["acme"], host="smtp.acme.example", security=Security.STARTTLS
    )
    response = login(demo["acme_admin"]).post(
        VERIFY_URL,
        json.dumps(
            {"sender_email": "ceo@evil.example", "recipient_email": "ops@acme.example"}
        ),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "sender_email" in response.json()["fields"]
    assert not Email.objects.exists()


def test_the_partner_admin_sets_the_domains_in_the_ops_console(demo, login):
    client = login(demo["acme_admin"])
    response = client.post(
        PAGE_URL,
        {"action": "domains", "allowed_sender_domains": "Acme.Example\n*.acme.example"},
    )
    assert response.status_code == 302
    identity = PartnerEmailIdentity.objects.get(partner=demo["acme"])
    assert identity.allowed_sender_domains == ["acme.example", "*.acme.example"]
    event = AuditEvent.objects.get(type="email_identity.updated")
    assert event.partner_id == demo["acme"].pk
    html = client.get(PAGE_URL).content.decode()
    assert "acme.example\n*.acme.example" in html


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("ops@acme.example", "is an address"),
        ("acme..example", "is not a domain name"),
        ("*acme.example", "is not a domain name"),
        ("localhost", "is not a domain name"),
    ],
)
def test_a_bad_domain_is_refused_naming_the_field_and_nothing_changes(
    demo, login, entry, message
):
    allow(demo["acme"], "acme.example")
    response = login(demo["acme_admin"]).post(
        PAGE_URL, {"action": "domains", "allowed_sender_domains": entry}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "Allowed sender domains:" in html and message in html
    identity = PartnerEmailIdentity.objects.get(partner=demo["acme"])
    assert identity.allowed_sender_domains == ["acme.example"]


def test_the_partners_own_configuration_must_fit_the_new_domains(demo, login):
    SmtpConfiguration.objects.create(
        partner=demo["acme"], host="smtp.acme.example", sender_email="x@old.example"
    )
    response = login(demo["acme_admin"]).post(
        PAGE_URL, {"action": "domains", "allowed_sender_domains": "acme.example"}
    )
    assert response.status_code == 200
    assert "Sender x@old.example" in response.content.decode()
    assert not PartnerEmailIdentity.objects.exists()


def test_an_org_configuration_saved_before_is_not_used_once_outside(demo, login):
    # given: an organization sending as its own domain, before any restriction
    SmtpConfiguration.objects.create(
        partner=demo["acme"], host="smtp.acme.example", sender_email="a@acme.example"
    )
    SmtpConfiguration.objects.create(
        partner=demo["acme"],
        organization=demo["acme-prod"],
        host="smtp.prod.example",
        sender_email="noreply@prod-corp.example",
    )
    # when: the partner restricts its domains
    response = login(demo["acme_admin"]).post(
        PAGE_URL,
        {"action": "domains", "allowed_sender_domains": "acme.example"},
        follow=True,
    )
    # then: told which organization is affected, and the partner's applies to it
    assert demo["acme-prod"].name in response.content.decode()
    effective = smtp_config_effective(
        partner=demo["acme"], organization=demo["acme-prod"]
    )
    assert effective.source == Level.PARTNER
    reason = effective.layer(Level.ORGANIZATION).skipped_because
    assert "noreply@prod-corp.example" in reason and "acme.example" in reason


def test_a_read_only_partner_user_cannot_change_the_domains(demo, login):
    user = demo["acme_admin"]
    user.role = "read_only"
    user.save()
    client = login(user)
    assert "<fieldset disabled>" in client.get(PAGE_URL).content.decode()
    response = client.post(
        PAGE_URL, {"action": "domains", "allowed_sender_domains": "acme.example"}
    )
    assert response.status_code == 403
    assert not PartnerEmailIdentity.objects.exists()


def test_an_organization_admin_cannot_open_the_page(demo, login):
    assert login(demo["prod_admin"]).get(PAGE_URL).status_code in (403, 404)
