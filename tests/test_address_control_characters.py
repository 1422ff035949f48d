"""Control characters in addresses are refused where the address is entered.

Django's ``validate_email`` accepts ESC, DEL and most other C0 controls in a
quoted local part (``"a\\x1bb"@example.com``); such an address went as it was into
MAIL FROM, RCPT TO and the headers. Every place that takes an address for mail
refuses it, naming the field, and nothing is saved or queued.
"""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from accounts.services import organization_create
from audit.models import AuditEvent
from smtp.models import Email, EmailKind, Security, SmtpConfiguration
from smtp.services import (
    send_system_email,
    smtp_config_save,
    smtp_test_email_request,
)
from smtp.validators import SmtpInput, SmtpValidationError
from tenants.models import Organization, User
from tenants.selectors import TenantScope

pytestmark = pytest.mark.django_db

CONFIG_URL = "/event/v1/email/config"
VERIFY_URL = "/event/v1/email/config/verification"
MESSAGE = "must not contain control characters"
HOSTILE_ADDRESSES = [
    pytest.param('"a\x1bb"@example.com', id="ESC"),
    pytest.param('"a\x7fb"@example.com', id="DEL"),
    pytest.param('"a\x01b"@example.com', id="SOH"),
    pytest.param('"a\\\tb"@example.com', id="escaped-tab"),
    pytest.param('"a\x9bb"@example.com', id="C1-CSI"),
]


def cookie_client(user) -> Client:
    """A client carrying only the ``rsid`` cookie, like ``curl -b 'rsid=...'``."""
    session = Client()
    session.force_login(user)
    client = Client()
    client.cookies["rsid"] = session.cookies["rsid"].value
    return client


def post(client: Client, url: str, body: dict):
    return client.post(
        url, data=json.dumps(body), content_type="application/x-www-form-urlencoded"
    )


def smtp_config(**changes) -> dict:
    values = {
        "host": "smtp.acme.example",
        "port": 587,
        "use_tls": True,
        "username": "mailer@acme.example",
        "password": "canary-ctl-pw-7Hq",
        "retries": 3,
    }
    return {"email_config": {"smtp_config": {**values, **changes}}}


@pytest.fixture
def partner_config(demo) -> SmtpConfiguration:
    return SmtpConfiguration.objects.create(
        partner=demo["acme"],
        host="smtp.acme.example",
        port=587,
        security=Security.STARTTLS,
        username="mailer@acme.example",
        password="canary-ctl-pw-7Hq",
    )


@pytest.mark.parametrize("address", HOSTILE_ADDRESSES)
@pytest.mark.parametrize("field", ["sender_email", "username"])
def test_the_config_api_refuses_control_characters_in_addresses(demo, address, field):
    before = AuditEvent.objects.count()
    response = post(
        cookie_client(demo["acme_admin"]), CONFIG_URL, smtp_config(**{field: address})
    )
    assert response.status_code == 400
    messages = response.json()["fields"][f"email_config.smtp_config.{field}"]
    assert any(MESSAGE in message for message in messages), messages
    assert not SmtpConfiguration.objects.exists()
    assert AuditEvent.objects.count() == before


@pytest.mark.parametrize("address", HOSTILE_ADDRESSES)
@pytest.mark.parametrize("field", ["recipient_email", "sender_email"])
def test_the_verification_api_refuses_control_characters_in_addresses(
    demo, partner_config, address, field
):
    body = {"recipient_email": "ops@acme.example", field: address}
    response = post(cookie_client(demo["acme_admin"]), VERIFY_URL, body)
    assert response.status_code == 400
    assert response.json()["fields"] == {
        field: [
            f"{'Recipient' if field == 'recipient_email' else 'Sender'} {MESSAGE} "
            "(such as ESC, tab or DEL): retype it without them."
        ]
    }
    assert not Email.objects.exists()


@pytest.mark.parametrize("address", HOSTILE_ADDRESSES)
def test_the_services_refuse_control_characters_in_every_address(demo, address):
    scope = TenantScope(partner=demo["acme"], organization=None)
    with pytest.raises(SmtpValidationError) as test_email:
        smtp_test_email_request(
            scope=scope, actor=demo["acme_admin"], recipient=address
        )
    with pytest.raises(SmtpValidationError) as system_email:
        send_system_email(
            kind=EmailKind.PASSWORD_RESET,
            to=address,
            context={},
            partner=demo["acme"],
        )
    with pytest.raises(SmtpValidationError) as saved:
        smtp_config_save(
            scope=scope,
            data=SmtpInput(
                host="smtp.acme.example",
                username=address,
                password="canary-ctl-pw-7Hq",
                sender_email=address,
            ),
            actor=demo["acme_admin"],
        )
    assert MESSAGE in test_email.value.errors["recipient"][0]
    assert MESSAGE in system_email.value.errors["to"][0]
    assert MESSAGE in saved.value.errors["sender_email"][0]
    assert MESSAGE in saved.value.errors["username"][0]
    assert not Email.objects.exists()
    assert not SmtpConfiguration.objects.exists()


@pytest.mark.parametrize("address", HOSTILE_ADDRESSES)
def test_a_new_organizations_admin_email_with_control_characters_is_refused(
    demo, address
):
    with pytest.raises(ValidationError) as caught:
        organization_create(
            partner=demo["acme"],
            name="Acme Staging",
            slug="",
            admin_email=address,
            admin_password="Staging-Admin-Pass-7",
            actor=demo["acme_admin"],
        )
    assert MESSAGE in caught.value.message_dict["admin_email"][0]
    assert not Organization.objects.filter(slug="acme-staging").exists()
    assert not User.objects.filter(email=address).exists()


def test_plain_addresses_still_pass(demo, partner_config):
    response = post(
        cookie_client(demo["acme_admin"]),
        VERIFY_URL,
        {"recipient_email": "ops@acme.example", "sender_email": "a.b+c@acme.example"},
    )
    assert response.status_code == 202
    assert Email.objects.get().recipient == "ops@acme.example"
