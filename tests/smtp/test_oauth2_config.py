"""Authentication as a choice: the OAuth2 settings through the API, their rules,
the write-only secrets, and the controller's environment variables."""

from __future__ import annotations

import json

import pytest

from audit.models import AuditEvent
from smtp.enums import AuthMethod, Level, OAuth2Provider
from smtp.models import SmtpConfiguration
from smtp.selectors import smtp_config_effective
from tests.support.oauth2 import service_account_key

pytestmark = pytest.mark.django_db

URL = "/event/v1/email/config"
SECRET = "client-secret-CANARY-q8Zr"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def microsoft_body(**oauth2) -> dict:
    return {
        "host": "smtp.office365.com",
        "port": 587,
        "use_tls": True,
        "username": "alerts@contoso.example",
        "auth_method": "oauth2",
        "oauth2": {
            "provider": "microsoft",
            "tenant_id": TENANT,
            "client_id": CLIENT,
            "client_secret": SECRET,
            "client_secret_expires_on": "2027-03-01",
            **oauth2,
        },
    }


def post(client, smtp_config: dict):
    return client.post(
        URL,
        data=json.dumps({"email_config": {"smtp_config": smtp_config}}),
        content_type="application/json",
    )


def test_a_microsoft_oauth2_configuration_is_saved_and_shown_without_its_secret(
    demo, login
):
    client = login(demo["acme_admin"])

    response = post(client, microsoft_body())

    assert response.status_code == 201, response.content
    shown = response.json()["email_config"]["smtp_config"]
    assert shown["auth_method"] == "oauth2"
    assert shown["password_set"] is False
    assert shown["oauth2"] == {
        "provider": "microsoft",
        "tenant_id": TENANT,
        "client_id": CLIENT,
        "client_secret_set": True,
        "scope": "",
        "effective_scope": "https://outlook.office365.com/.default",
        "token_url": "",
        "service_account_key_set": False,
        "client_secret_expires_on": "2027-03-01",
    }
    assert response.json()["effective"]["auth_method"] == "oauth2"
    stored = SmtpConfiguration.objects.get()
    assert stored.oauth2_client_secret == SECRET
    again = client.get(URL)
    assert SECRET not in response.content.decode() + again.content.decode()
    event = AuditEvent.objects.get(type="smtp_config.created")
    assert event.detail["changes"]["oauth2_client_secret"] == "set"
    assert event.detail["changes"]["auth_method"] == [None, "oauth2"]
    assert SECRET not in json.dumps(event.detail)


def test_a_blank_secret_keeps_the_stored_one(demo, login):
    client = login(demo["acme_admin"])
    post(client, microsoft_body())

    response = post(client, microsoft_body(client_secret="", scope=""))

    assert response.status_code == 200, response.content
    assert SmtpConfiguration.objects.get().oauth2_client_secret == SECRET


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"host": "smtp.elsewhere.example"}, "Host changed"),
        ({"oauth2": {"client_id": "11111111-2222-3333-4444-555555555555"}}, "Client"),
        ({"oauth2": {"tenant_id": "fabrikam.onmicrosoft.com"}}, "Tenant ID"),
    ],
)
def test_a_changed_server_or_client_asks_for_the_secret_again(
    demo, login, change, named
):
    client = login(demo["acme_admin"])
    post(client, microsoft_body())
    before = list(SmtpConfiguration.objects.values())
    body = microsoft_body(client_secret="")
    body.update({k: v for k, v in change.items() if k != "oauth2"})
    body["oauth2"].update(change.get("oauth2", {}))

    response = post(client, body)

    assert response.status_code == 400
    fields = response.json()["fields"]
    message = " ".join(fields["email_config.smtp_config.oauth2.client_secret"])
    assert named in message and "enter the client secret again" in message
    assert list(SmtpConfiguration.objects.values()) == before


@pytest.mark.parametrize(
    ("oauth2", "field", "words"),
    [
        ({"provider": "yahoo"}, "provider", "microsoft, google or custom"),
        ({"tenant_id": ""}, "tenant_id", "Directory (tenant) ID"),
        ({"tenant_id": "not a tenant!"}, "tenant_id", "GUID"),
        ({"client_id": ""}, "client_id", "Application (client) ID"),
        ({"client_secret": ""}, "client_secret", "Client secret is required"),
        (
            {"provider": "custom", "token_url": "http://auth.example.com/token"},
            "token_url",
            "https://",
        ),
        (
            {"provider": "custom", "token_url": "https://10.0.0.5/token"},
            "token_url",
            "SMTP_ALLOWED_NETWORKS",
        ),
        (
            {"provider": "custom", "token_url": "https://u:p@auth.example.com/t"},
            "token_url",
            "user name or password",
        ),
        ({"provider": "google", "client_secret": ""}, "service_account_key", "JSON"),
        (
            {"provider": "google", "client_secret": "", "service_account_key": "{}"},
            "service_account_key",
            "service_account",
        ),
    ],
)
def test_bad_oauth2_settings_name_the_field_and_change_nothing(
    demo, login, oauth2, field, words
):
    client = login(demo["acme_admin"])

    response = post(client, microsoft_body(**oauth2))

    assert response.status_code == 400
    messages = response.json()["fields"][f"email_config.smtp_config.oauth2.{field}"]
    assert words in " ".join(messages)
    assert not SmtpConfiguration.objects.exists()
    assert SECRET not in response.content.decode()


def test_oauth2_needs_tls_and_a_mailbox(demo, login):
    client = login(demo["acme_admin"])
    body = {**microsoft_body(), "use_tls": False, "username": "", "port": 25}

    response = post(client, body)

    assert response.status_code == 400
    fields = response.json()["fields"]
    assert "needs TLS" in " ".join(fields["email_config.smtp_config.use_tls"])
    assert "mailbox" in " ".join(fields["email_config.smtp_config.username"])
    assert not SmtpConfiguration.objects.exists()


def test_a_google_key_is_write_only_and_checked(demo, login):
    client = login(demo["acme_admin"])
    key_json, _public = service_account_key()
    body = {
        **microsoft_body(),
        "host": "smtp.gmail.com",
        "oauth2": {"provider": "google", "service_account_key": json.loads(key_json)},
    }

    response = post(client, body)

    assert response.status_code == 201, response.content
    shown = response.json()["email_config"]["smtp_config"]["oauth2"]
    assert shown["service_account_key_set"] is True
    assert shown["effective_scope"] == "https://mail.google.com/"
    private = json.loads(key_json)["private_key"]
    assert private[40:80] not in response.content.decode()
    stored = SmtpConfiguration.objects.get()
    assert json.loads(stored.oauth2_service_account_key) == json.loads(key_json)
    assert stored.oauth2_client_secret is None


def test_switching_back_to_password_removes_the_oauth2_secret(demo, login):
    client = login(demo["acme_admin"])
    post(client, microsoft_body())

    response = post(
        client,
        {
            "host": "smtp.acme.example",
            "username": "mailer@acme.example",
            "password": "pw-123456",
            "auth_method": "password",
        },
    )

    assert response.status_code == 200, response.content
    stored = SmtpConfiguration.objects.get()
    assert stored.auth_method == AuthMethod.PASSWORD
    assert stored.oauth2_client_secret is None
    assert stored.password == "pw-123456"
    assert response.json()["email_config"]["smtp_config"]["oauth2"] is None


def test_none_refuses_a_password(demo, login):
    client = login(demo["acme_admin"])
    response = post(
        client,
        {"host": "relay.acme.example", "auth_method": "none", "password": "pw"},
    )
    assert response.status_code == 400
    messages = response.json()["fields"]["email_config.smtp_config.password"]
    assert "Leave Password empty" in " ".join(messages)
    assert not SmtpConfiguration.objects.exists()


def test_certificate_sends_no_auth(demo, login, certs):
    client = login(demo["acme_admin"])
    response = post(
        client,
        {
            "host": "relay.acme.example",
            "auth_method": "certificate",
            "username": "x",
            "client_cert": certs.client.cert.read_text(),
            "client_key": certs.client.key.read_text(),
        },
    )
    assert response.status_code == 201, response.content
    effective = smtp_config_effective(partner=demo["acme"])
    assert effective.settings.auth_method == AuthMethod.CERTIFICATE
    assert effective.settings.client_certificate is not None
    assert not effective.settings.authenticates


def test_certificate_authentication_needs_a_certificate(demo, login):
    client = login(demo["acme_admin"])
    response = post(
        client, {"host": "relay.acme.example", "auth_method": "certificate"}
    )
    assert response.status_code == 400
    messages = response.json()["fields"]["email_config.smtp_config.client_cert"]
    assert "Authentication is Client certificate" in " ".join(messages)
    assert not SmtpConfiguration.objects.exists()


def test_controller_oauth2_comes_from_the_environment(demo, controller_smtp):
    controller_smtp(
        ADDR="smtp.office365.com",
        USERNAME="alerts@operator.example",
        AUTH_METHOD="oauth2",
        OAUTH2_PROVIDER="microsoft",
        OAUTH2_TENANT_ID=TENANT,
        OAUTH2_CLIENT_ID=CLIENT,
        OAUTH2_CLIENT_SECRET=SECRET,
        OAUTH2_CLIENT_SECRET_EXPIRES_ON="2027-01-31",
    )

    effective = smtp_config_effective(partner=None)

    assert effective.source == Level.CONTROLLER
    settings = effective.settings
    assert settings.uses_oauth2 and settings.trusted
    assert settings.oauth2.provider == OAuth2Provider.MICROSOFT
    assert settings.oauth2.client_secret.reveal() == SECRET
    assert SECRET not in repr(settings)


@pytest.mark.parametrize(
    ("values", "variable"),
    [
        ({"AUTH_METHOD": "kerberos"}, "FW_EVENT_SMTP_SERVER_AUTH_METHOD"),
        ({"AUTH_METHOD": "oauth2"}, "FW_EVENT_SMTP_SERVER_OAUTH2_PROVIDER"),
        (
            {"AUTH_METHOD": "oauth2", "OAUTH2_PROVIDER": "microsoft"},
            "FW_EVENT_SMTP_SERVER_OAUTH2_TENANT_ID",
        ),
        (
            {
                "AUTH_METHOD": "oauth2",
                "OAUTH2_PROVIDER": "microsoft",
                "OAUTH2_TENANT_ID": TENANT,
                "OAUTH2_CLIENT_ID": CLIENT,
            },
            "FW_EVENT_SMTP_SERVER_OAUTH2_CLIENT_SECRET",
        ),
        (
            {"AUTH_METHOD": "oauth2", "OAUTH2_CLIENT_SECRET_EXPIRES_ON": "soon"},
            "FW_EVENT_SMTP_SERVER_OAUTH2_CLIENT_SECRET_EXPIRES_ON",
        ),
    ],
)
def test_a_misconfigured_controller_names_the_variable(
    demo, controller_smtp, values, variable
):
    controller_smtp(ADDR="smtp.office365.com", USERNAME="a@operator.example", **values)

    layer = smtp_config_effective(partner=None).layer(Level.CONTROLLER)

    assert layer.settings is None
    assert variable in layer.skipped_because


def test_the_controller_reads_a_google_key_file(demo, controller_smtp, tmp_path):
    key_json, _public = service_account_key()
    path = tmp_path / "key.json"
    path.write_text(key_json)
    controller_smtp(
        ADDR="smtp.gmail.com",
        USERNAME="alerts@operator.example",
        AUTH_METHOD="oauth2",
        OAUTH2_PROVIDER="google",
        OAUTH2_SERVICE_ACCOUNT_KEY_FILE=str(path),
    )

    settings = smtp_config_effective(partner=None).settings

    assert settings.oauth2.service_account_key.reveal() == key_json


def test_oauth2_settings_without_oauth2_authentication_are_refused(demo, login):
    client = login(demo["acme_admin"])
    body = microsoft_body()
    del body["auth_method"]

    response = post(client, body)

    assert response.status_code == 400
    messages = response.json()["fields"]["email_config.smtp_config.auth_method"]
    assert "set it to oauth2" in " ".join(messages)
    assert not SmtpConfiguration.objects.exists()
