"""The SMTP page with Authentication as one choice, and the client secret's
expiry warning (banner and one audit event)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from smtp.models import AuthMethod, OAuth2Provider, Security, SmtpConfiguration
from smtp.services import smtp_config_health_check

pytestmark = pytest.mark.django_db

SECRET = "page-secret-CANARY-h7Q"
OPS = "/ops/smtp/"


def form(**changes) -> dict[str, str]:
    return {
        "action": "save",
        "host": "smtp.office365.com",
        "port": "587",
        "security": "starttls",
        "retries": "3",
        "auth_method": "oauth2",
        "username": "alerts@acme.example",
        "oauth2_provider": "microsoft",
        "oauth2_tenant_id": "contoso.onmicrosoft.com",
        "oauth2_client_id": "app-1",
        "oauth2_client_secret": SECRET,
        **changes,
    }


def oauth2_configuration(demo, **fields) -> SmtpConfiguration:
    values = {
        "partner": demo["acme"],
        "host": "127.0.0.1",
        "port": 1,
        "security": Security.STARTTLS,
        "username": "alerts@acme.example",
        "auth_method": AuthMethod.OAUTH2,
        "oauth2_provider": OAuth2Provider.MICROSOFT,
        "oauth2_tenant_id": "contoso.onmicrosoft.com",
        "oauth2_client_id": "app-1",
        "oauth2_client_secret": SECRET,
        **fields,
    }
    return SmtpConfiguration.objects.create(**values)


def test_the_page_offers_authentication_as_one_choice(demo, login):
    page = login(demo["acme_admin"]).get(OPS).content.decode()

    assert '<select name="auth_method"' in page
    for value, label in AuthMethod.choices:
        assert f'<option value="{value}"' in page and label in page
    assert 'data-auth="oauth2"' in page and 'data-auth="password"' in page
    assert 'data-provider="microsoft"' in page and 'data-provider="google"' in page
    assert 'id="id_oauth2_client_secret"' in page


def test_saving_oauth2_on_the_page_stores_the_secret_and_never_shows_it(demo, login):
    client = login(demo["acme_admin"])

    response = client.post(OPS, form(), follow=True)

    assert response.status_code == 200
    stored = SmtpConfiguration.objects.get()
    assert (stored.auth_method, stored.oauth2_client_secret) == ("oauth2", SECRET)
    page = response.content.decode()
    assert 'id="client-secret-set"' in page
    assert "OAuth2: Microsoft 365 (Entra ID)" in page  # the panel in effect
    assert re.search(r'<option value="oauth2" selected>', page)
    assert SECRET not in page


def test_a_refused_save_renders_neither_secret_nor_key_back(demo, login):
    client = login(demo["acme_admin"])
    key = '{"type": "service_account", "private_key": "KEY-CANARY-zz9"}'

    response = client.post(
        OPS,
        form(
            oauth2_provider="google",
            oauth2_client_secret="",
            oauth2_service_account_key=key,
        ),
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert "The configuration was not saved" in page
    assert "Service account key" in page
    assert "KEY-CANARY-zz9" not in page
    assert not SmtpConfiguration.objects.exists()


def test_a_secret_expiring_within_14_days_shows_a_banner(demo, login):
    today = timezone.now().date()
    configuration = oauth2_configuration(
        demo, oauth2_client_secret_expires_on=today + timedelta(days=10)
    )
    client = login(demo["acme_admin"])

    page = client.get(OPS).content.decode()
    assert 'id="oauth2-secret-expiry"' in page
    assert "in 10 days" in page

    configuration.oauth2_client_secret_expires_on = today + timedelta(days=30)
    configuration.save()
    assert 'id="oauth2-secret-expiry"' not in client.get(OPS).content.decode()


def test_the_health_check_records_one_expiry_event_per_date(demo, token_server):
    # The token endpoint refuses the client: the check fails at token, before
    # any SMTP connection, and still warns about the secret.
    token_server.refuse = "invalid_client"
    today = timezone.now().date()
    configuration = oauth2_configuration(
        demo, oauth2_client_secret_expires_on=today + timedelta(days=3)
    )

    smtp_config_health_check(configuration_id=configuration.pk)
    smtp_config_health_check(configuration_id=configuration.pk)

    events = AuditEvent.objects.filter(type="smtp_config.oauth2.secret_expiring")
    assert events.count() == 1
    event = events.get()
    assert event.detail["days_left"] == 3
    assert "expires in 3 day(s)" in event.summary
    assert SECRET not in event.summary + str(event.detail)

    # a new secret with a new date is warned about again, when its time comes
    SmtpConfiguration.objects.filter(pk=configuration.pk).update(
        oauth2_client_secret_expires_on=today + timedelta(days=1)
    )
    smtp_config_health_check(configuration_id=configuration.pk)
    assert events.count() == 2


def test_no_expiry_event_far_from_the_date(demo, token_server):
    token_server.refuse = "invalid_client"
    configuration = oauth2_configuration(
        demo,
        oauth2_client_secret_expires_on=timezone.now().date() + timedelta(days=15),
    )

    smtp_config_health_check(configuration_id=configuration.pk)

    assert not AuditEvent.objects.filter(
        type="smtp_config.oauth2.secret_expiring"
    ).exists()


def test_oauth2_fields_left_in_a_form_switched_to_password_are_ignored(demo, login):
    client = login(demo["acme_admin"])

    response = client.post(
        OPS,
        form(
            auth_method="password",
            host="smtp.acme.example",
            username="mailer@acme.example",
            password="pw-Secret-1",
        ),
        follow=True,
    )

    assert response.status_code == 200
    assert "SMTP configuration saved." in response.content.decode()
    stored = SmtpConfiguration.objects.get()
    assert stored.auth_method == AuthMethod.PASSWORD
    assert (stored.oauth2_provider, stored.oauth2_client_secret) == ("", None)
