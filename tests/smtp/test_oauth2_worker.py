"""OAuth2 end to end: the page's Verify and Send Test Email, the verification API
and the health check, through a real Celery worker, the suite's HTTPS token
endpoint and an aiosmtpd server that takes only XOAUTH2."""

from __future__ import annotations

import json
import uuid

import pytest
from django.test import Client

from audit.models import AuditEvent
from smtp.models import (
    AuthMethod,
    EmailKind,
    OAuth2Provider,
    Security,
    SmtpConfiguration,
)
from smtp.services import SystemEmail, send_system_emails, smtp_config_health_check
from tests.support.oauth2 import XOAuth2Handler
from tests.support.smtp_servers import Behaviour, SmtpTestServer
from tests.support.worker import wait_until

SECRET = "oauth-worker-secret-CANARY-w3"
MAILBOX = "alerts@acme.example"
TENANT = "contoso.onmicrosoft.com"


@pytest.fixture
def xoauth2_smtp(certs, token_server):
    # The worker does not trust the test CA for SMTP (SMTP_CA_BUNDLE is not in
    # its environment): these configurations skip the SMTP certificate check.
    # The token endpoint's certificate is checked (SMTP_OAUTH2_CA_BUNDLE is).
    server = SmtpTestServer(
        starttls=certs.server, handler=XOAuth2Handler(Behaviour(), token_server)
    )
    yield server
    server.stop()


def page_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page_form(smtp, client_id: str, **changes) -> dict[str, str]:
    return {
        "host": "127.0.0.1",
        "port": str(smtp.port),
        "security": "starttls",
        "use_insecure": "on",
        "retries": "3",
        "auth_method": "oauth2",
        "username": MAILBOX,
        "oauth2_provider": "microsoft",
        "oauth2_tenant_id": TENANT,
        "oauth2_client_id": client_id,
        "oauth2_client_secret": SECRET,
        "recipient": "me@acme.example",
        **changes,
    }


def new_client(token_server) -> str:
    client_id = str(uuid.uuid4())
    token_server.clients[client_id] = SECRET
    return client_id


def test_verify_shows_the_token_then_auth(worker, demo, xoauth2_smtp, token_server):
    client = page_client(demo["acme_admin"])

    response = client.post(
        "/ops/smtp/test",
        page_form(xoauth2_smtp, new_client(token_server), mode="verify"),
    )

    assert response.status_code == 202, response.content
    answer = client.get(response.json()["status_url"], {"wait": "20"}).json()
    assert answer["status"] == "sent", answer
    steps = {step["name"]: step for step in answer["steps"]}
    assert [s["name"] for s in answer["steps"]][:2] == ["token", "resolve"]
    assert steps["token"]["status"] == "ok"
    assert "Microsoft Entra ID" in steps["token"]["detail"]
    assert "valid until" in steps["token"]["detail"]
    assert (steps["auth"]["status"], steps["auth"]["reply_code"]) == ("ok", 235)
    assert xoauth2_smtp.messages == []
    assert token_server.count == 1
    assert SECRET not in json.dumps(answer)


def test_send_test_email_arrives_and_two_sends_make_one_token_request(
    worker, demo, xoauth2_smtp, token_server
):
    client = page_client(demo["acme_admin"])
    form = page_form(xoauth2_smtp, new_client(token_server), mode="send")

    for _ in range(2):
        response = client.post("/ops/smtp/test", form)
        assert response.status_code == 202, response.content
        answer = client.get(response.json()["status_url"], {"wait": "20"}).json()
        assert answer["status"] == "sent", answer

    assert len(xoauth2_smtp.messages) == 2
    assert xoauth2_smtp.handler.xoauth2_users == [MAILBOX, MAILBOX]
    assert token_server.count == 1


def test_a_wrong_secret_fails_at_token_naming_the_field_and_connects_nowhere(
    worker, demo, xoauth2_smtp, token_server
):
    client = page_client(demo["prod_admin"])
    form = page_form(
        xoauth2_smtp,
        new_client(token_server),
        oauth2_client_secret="wrong-" + SECRET,
        mode="send",
    )

    response = client.post("/console/infrastructure/system/settings/smtp/test", form)

    answer = client.get(response.json()["status_url"], {"wait": "20"}).json()
    assert answer["status"] == "failed", answer
    assert answer["failed_step"] == "token"
    assert answer["field"] == "oauth2_client_secret"
    assert answer["reply_code"] == 401
    assert "AADSTS7000215" in answer["error"]
    assert [step["name"] for step in answer["steps"]] == ["token"]
    assert xoauth2_smtp.connections == 0
    assert SECRET not in json.dumps(answer)


def test_the_verification_api_uses_the_saved_oauth2_configuration(
    worker, demo, xoauth2_smtp, token_server
):
    SmtpConfiguration.objects.create(
        partner=demo["acme"],
        host="127.0.0.1",
        port=xoauth2_smtp.port,
        security=Security.STARTTLS,
        use_insecure=True,
        username=MAILBOX,
        auth_method=AuthMethod.OAUTH2,
        oauth2_provider=OAuth2Provider.MICROSOFT,
        oauth2_tenant_id=TENANT,
        oauth2_client_id=new_client(token_server),
        oauth2_client_secret=SECRET,
    )
    client = page_client(demo["acme_admin"])

    response = client.post(
        "/event/v1/email/config/verification?wait=20",
        data=json.dumps({"recipient_email": "ops@acme.example"}),
        content_type="application/x-www-form-urlencoded",
    )

    answer = response.json()
    assert answer["status"] == "sent", answer
    assert answer["steps"][0]["name"] == "token"
    assert len(xoauth2_smtp.messages) == 1


@pytest.mark.django_db
def test_the_health_check_shows_the_token_and_a_refused_one(
    demo, xoauth2_smtp, token_server, settings
):
    # In this process: longer socket limits, so a busy machine does not fail it.
    settings.SMTP_TIMEOUT = 15
    settings.SMTP_SESSION_DEADLINE = 45
    configuration = SmtpConfiguration.objects.create(
        partner=demo["acme"],
        host="127.0.0.1",
        port=xoauth2_smtp.port,
        security=Security.STARTTLS,
        use_insecure=True,
        username=MAILBOX,
        auth_method=AuthMethod.OAUTH2,
        oauth2_provider=OAuth2Provider.MICROSOFT,
        oauth2_tenant_id=TENANT,
        oauth2_client_id=new_client(token_server),
        oauth2_client_secret=SECRET,
    )

    assert smtp_config_health_check(configuration_id=configuration.pk) == "ok"
    configuration.refresh_from_db()
    assert "Access token from Microsoft Entra ID" in configuration.health_detail

    token_server.refuse = "invalid_client"
    token_server.revoke_all()
    SmtpConfiguration.objects.filter(pk=configuration.pk).update(
        oauth2_client_id="another-" + configuration.oauth2_client_id
    )
    connections = xoauth2_smtp.connections

    assert smtp_config_health_check(configuration_id=configuration.pk) == "failing"
    configuration.refresh_from_db()
    assert configuration.health_detail.startswith("token:")
    assert "Client secret" in configuration.health_detail
    assert xoauth2_smtp.connections == connections
    event = AuditEvent.objects.get(type="smtp_config.health.failing")
    assert event.detail["step"] == "token"
    assert SECRET not in json.dumps(event.detail)


def _partner_oauth2(demo, smtp, token_server) -> SmtpConfiguration:
    return SmtpConfiguration.objects.create(
        partner=demo["acme"],
        host="127.0.0.1",
        port=smtp.port,
        security=Security.STARTTLS,
        use_insecure=True,
        username=MAILBOX,
        auth_method=AuthMethod.OAUTH2,
        oauth2_provider=OAuth2Provider.MICROSOFT,
        oauth2_tenant_id=TENANT,
        oauth2_client_id=new_client(token_server),
        oauth2_client_secret=SECRET,
    )


def _alerts(demo, count: int):
    return send_system_emails(
        [
            SystemEmail(
                EmailKind.ALERT,
                f"oncall{number}@acme.example",
                {"title": "t", "message": "m"},
                partner=demo["acme"],
            )
            for number in range(count)
        ]
    )


def _final(emails) -> list:
    def done() -> bool:
        for email in emails:
            email.refresh_from_db()
        return all(email.is_final for email in emails)

    wait_until(done, timeout=40)
    return emails


def test_system_emails_go_out_over_xoauth2_with_one_token(
    worker, demo, xoauth2_smtp, token_server
):
    _partner_oauth2(demo, xoauth2_smtp, token_server)

    emails = _final(_alerts(demo, 3))

    assert [email.status for email in emails] == ["sent"] * 3
    assert len(xoauth2_smtp.messages) == 3
    assert token_server.count == 1


def test_a_refused_client_fails_system_emails_at_token_without_connecting(
    worker, demo, xoauth2_smtp, token_server
):
    _partner_oauth2(demo, xoauth2_smtp, token_server)
    token_server.refuse = "invalid_client"

    emails = _final(_alerts(demo, 3))

    assert [email.status for email in emails] == ["failed"] * 3
    assert {email.failed_step for email in emails} == {"token"}
    assert {email.error_field for email in emails} == {"oauth2_client_secret"}
    assert xoauth2_smtp.connections == 0
    # A permanent refusal is not retried, and the batch stops at the first.
    assert token_server.count <= 3
