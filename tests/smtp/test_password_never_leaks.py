"""A distinctive password never appears in pages, API answers, audit or logs."""

from __future__ import annotations

import json
import logging

import pytest
from django.test import Client

from audit.models import AuditEvent

pytestmark = pytest.mark.django_db

CANARY = "canary-NEVER-SHOWN-8vQp"


@pytest.fixture
def all_logs(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


def test_the_password_appears_nowhere(demo, login, all_logs, controller_smtp):
    controller_smtp(ADDR="mail.controller.example", PASSWORD=CANARY + "-controller")
    seen: list[str] = []
    partner = login(demo["acme_admin"])
    org = login(demo["prod_admin"])
    form = {
        "action": "save",
        "host": "smtp.acme.example",
        "port": "587",
        "security": "starttls",
        "username": "mailer@acme.example",
        "password": CANARY,
        "retries": "3",
    }
    seen.append(partner.post("/ops/smtp/", form, follow=True).content.decode())
    seen.append(partner.post("/ops/smtp/", {**form, "port": "0"}).content.decode())
    seen.append(partner.get("/ops/smtp/").content.decode())
    seen.append(
        org.get("/console/infrastructure/system/settings/smtp/").content.decode()
    )
    api_config = {
        "host": "smtp.prod.example",
        "port": 587,
        "use_tls": True,
        "username": "mailer@acme.example",
        "password": CANARY,
        "retries": 3,
    }
    response = org.post(
        "/event/v1/email/config",
        data=json.dumps({"email_config": {"smtp_config": api_config}}),
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    seen.append(response.content.decode())
    seen.append(org.get("/event/v1/email/config").content.decode())
    bad = org.post(
        "/event/v1/email/config",
        data=json.dumps({"email_config": {"smtp_config": {**api_config, "port": 0}}}),
        content_type="application/json",
    )
    assert bad.status_code == 400
    seen.append(bad.content.decode())
    support = login(demo["support"])
    seen.append(support.get("/admin/smtp/smtpconfiguration/").content.decode())
    for configuration_id in (1, 2):
        seen.append(
            support.get(
                f"/admin/smtp/smtpconfiguration/{configuration_id}/change/"
            ).content.decode()
        )
    seen.append(
        support.get(
            f"/admin/tenants/organization/{demo['acme-prod'].pk}/change/"
        ).content.decode()
    )
    seen.append(Client().get("/api/schema/").content.decode())
    for event in AuditEvent.objects.all():
        seen.append(event.summary + json.dumps(event.detail))
    seen.append(all_logs.text)
    everything = "\n".join(seen)
    assert "smtp.acme.example" in everything  # the checks saw real content
    assert CANARY not in everything


OAUTH2_CANARY = "canary-OAUTH2-secret-Jr5w"


def _database_text() -> str:
    """Every row of the SMTP and audit tables, as the database stores it."""
    from django.db import connection

    dumped = []
    with connection.cursor() as cursor:
        for table in (
            "smtp_smtpconfiguration",
            "smtp_smtpdraft",
            "smtp_email",
            "smtp_emailattempt",
            "audit_auditevent",
        ):
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 (fixed names)
            for row in cursor.fetchall():
                dumped.append(
                    " ".join(
                        bytes(value).decode("latin-1")
                        if isinstance(value, memoryview | bytes)
                        else str(value)
                        for value in row
                    )
                )
    return "\n".join(dumped)


def test_oauth2_secrets_and_tokens_appear_nowhere(
    demo, login, all_logs, token_server, smtp_server, certs, settings
):
    from smtp.models import SmtpConfiguration
    from smtp.services import smtp_config_health_check
    from tests.support.oauth2 import XOAuth2Handler, service_account_key
    from tests.support.smtp_servers import Behaviour

    # Longer socket limits than the suite's: a busy machine must not fail this.
    settings.SMTP_TIMEOUT = 15
    settings.SMTP_SESSION_DEADLINE = 45
    # given an XOAUTH2 server, a Microsoft app and a Google service account
    smtp = smtp_server(
        starttls=certs.server, handler=XOAuth2Handler(Behaviour(), token_server)
    )
    token_server.clients["app-1"] = OAUTH2_CANARY
    key_json, public = service_account_key()
    private_part = json.loads(key_json)["private_key"].splitlines()[5]
    token_server.service_accounts["mailer@project.iam.gserviceaccount.com"] = public
    seen: list[str] = []
    partner = login(demo["acme_admin"])
    org = login(demo["prod_admin"])
    form = {
        "action": "save",
        "host": "127.0.0.1",
        "port": str(smtp.port),
        "security": "starttls",
        "use_insecure": "on",
        "retries": "3",
        "auth_method": "oauth2",
        "username": "alerts@acme.example",
        "oauth2_provider": "microsoft",
        "oauth2_tenant_id": "contoso.onmicrosoft.com",
        "oauth2_client_id": "app-1",
        "oauth2_client_secret": OAUTH2_CANARY,
        "oauth2_client_secret_expires_on": "2000-01-01",
    }
    # when they are saved (once refused, once accepted), shown, checked and exported
    seen.append(partner.post("/ops/smtp/", {**form, "port": "0"}).content.decode())
    seen.append(partner.post("/ops/smtp/", form, follow=True).content.decode())
    api_config = {
        "host": "127.0.0.1",
        "port": smtp.port,
        "use_tls": True,
        "use_insecure": True,
        "username": "alerts@acme.example",
        "auth_method": "oauth2",
        "oauth2": {"provider": "google", "service_account_key": key_json},
    }
    response = org.post(
        "/event/v1/email/config",
        data=json.dumps({"email_config": {"smtp_config": api_config}}),
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    seen.append(response.content.decode())
    for configuration in SmtpConfiguration.objects.all():
        status = smtp_config_health_check(configuration_id=configuration.pk)
        configuration.refresh_from_db()
        assert status == "ok", configuration.health_detail
    assert token_server.count == 2
    seen.append(partner.get("/ops/smtp/").content.decode())
    seen.append(
        org.get("/console/infrastructure/system/settings/smtp/").content.decode()
    )
    seen.append(org.get("/event/v1/email/config").content.decode())
    seen.append(partner.get("/event/v1/email/config").content.decode())
    for category in ("AUDIT", "SYSTEMAUDIT"):
        export = partner.get("/ops/audit-logs/export.csv", {"category": category})
        assert export.status_code == 200
        seen.append(b"".join(export.streaming_content).decode())
    support = login(demo["support"])
    for configuration in SmtpConfiguration.objects.all():
        seen.append(
            support.get(
                f"/admin/smtp/smtpconfiguration/{configuration.pk}/change/"
            ).content.decode()
        )
    for event in AuditEvent.objects.all():
        seen.append(event.summary + json.dumps(event.detail))
    seen.append(all_logs.text)
    seen.append(_database_text())
    everything = "\n".join(seen)

    # then the secret, the key and the tokens are nowhere, in any of them
    assert "Access token from Microsoft Entra ID" in everything  # real content
    assert "smtp_config.oauth2.secret_expiring" in everything
    assert AuditEvent.objects.filter(type="smtp_config.oauth2.secret_expiring").exists()
    assert OAUTH2_CANARY not in everything
    assert private_part not in everything
    for token in token_server.issued():
        assert token not in everything


def test_the_client_key_appears_nowhere_in_clear(
    demo, login, all_logs, certs, controller_smtp
):
    from django.db import connection

    cert = certs.client.cert.read_text()
    key = certs.client.key.read_text()
    # Every line of the key's body is a canary.
    canaries = key.strip().splitlines()[1:-1]
    controller_smtp(
        ADDR="mail.controller.example",
        CLIENT_CERT=cert,
        CLIENT_KEY=certs.client.key.read_text(),
    )
    seen: list[str] = []
    partner = login(demo["acme_admin"])
    org = login(demo["prod_admin"])
    form = {
        "action": "save",
        "host": "smtp.acme.example",
        "port": "587",
        "security": "starttls",
        "retries": "3",
        "client_cert": cert,
        "client_key": key,
    }
    seen.append(partner.post("/ops/smtp/", form, follow=True).content.decode())
    seen.append(partner.post("/ops/smtp/", {**form, "port": "0"}).content.decode())
    seen.append(partner.get("/ops/smtp/").content.decode())
    api_config = {
        "host": "smtp.prod.example",
        "client_cert": cert,
        "client_key": key,
    }
    response = org.post(
        "/event/v1/email/config",
        data=json.dumps({"email_config": {"smtp_config": api_config}}),
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    seen.append(response.content.decode())
    seen.append(org.get("/event/v1/email/config").content.decode())
    seen.append(
        org.get("/console/infrastructure/system/settings/smtp/").content.decode()
    )
    bad = org.post(
        "/event/v1/email/config",
        data=json.dumps(
            {"email_config": {"smtp_config": {**api_config, "host": "smtp.x.example"}}}
        ),
        content_type="application/json",
    )
    seen.append(bad.content.decode())
    org.post(
        "/console/infrastructure/system/settings/smtp/",
        {"action": "remove_client_cert"},
    )
    support = login(demo["support"])
    seen.append(support.get("/admin/smtp/smtpconfiguration/").content.decode())
    for configuration_id in (1, 2):
        seen.append(
            support.get(
                f"/admin/smtp/smtpconfiguration/{configuration_id}/change/"
            ).content.decode()
        )
    for event in AuditEvent.objects.all():
        seen.append(event.summary + json.dumps(event.detail))
    seen.append(all_logs.text)
    with connection.cursor() as cursor:
        cursor.execute("SELECT client_cert, client_key FROM smtp_smtpconfiguration")
        for cert_column, key_column in cursor.fetchall():
            seen.append(
                cert_column + (bytes(key_column).decode() if key_column else "")
            )
        cursor.execute("SELECT client_key FROM smtp_smtpdraft")
        seen.extend(bytes(row[0]).decode() for row in cursor.fetchall() if row[0])
    everything = "\n".join(seen)
    assert "CN=console.acme.example" in everything  # the checks saw real content
    assert "BEGIN CERTIFICATE" in everything  # the certificate is public, in the DB
    for canary in canaries:
        assert canary not in everything
