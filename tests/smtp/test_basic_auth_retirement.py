"""Providers that stop taking passwords: the hint ``basic_auth_disabled`` in
Verify and in the health check (against aiosmtpd in a "retired" mode that answers
every password login as Microsoft 365 and Google do), and the standing notice
for configurations that still log in to them with a password."""

from __future__ import annotations

import json

import pytest

from audit.models import AuditEvent
from smtp.delivery import deliver
from smtp.delivery.hints import BASIC_AUTH_DISABLED
from smtp.models import HealthStatus, Security, SmtpConfiguration
from smtp.services import smtp_config_health_check
from tests.support.smtp_servers import (
    BASIC_AUTH_DISABLED_REPLY,
    Behaviour,
    free_port,
    smtp_settings,
)

pytestmark = pytest.mark.django_db

LOGIN = "mailer@acme.example"
PASSWORD = "canary-retired-pw-K9"

RETIRED_REPLIES = [
    BASIC_AUTH_DISABLED_REPLY,
    "550 5.7.30 Basic authentication is not supported for Client Submission",
    "534 5.7.9 Application-specific password required. Learn more at "
    "https://support.google.com/mail/?p=InvalidSecondFactor",
    "535 5.7.3 Authentication unsuccessful",
]


def retired_server(smtp_server, certs, reply: str = BASIC_AUTH_DISABLED_REPLY):
    return smtp_server(
        starttls=certs.server,
        users={LOGIN: PASSWORD},
        behaviour=Behaviour(auth_reply=reply),
    )


def verify(server):
    settings = smtp_settings(
        server.port, security=Security.STARTTLS, username=LOGIN, password=PASSWORD
    )
    return deliver(
        settings,
        None,
        sender=settings.sender_email,
        recipients=[settings.sender_email],
        verify_only=True,
    )


@pytest.mark.parametrize("reply", RETIRED_REPLIES, ids=lambda r: r[:9])
def test_a_retired_password_login_gets_the_basic_auth_disabled_hint(
    smtp_server, certs, trust_test_ca, reply
):
    server = retired_server(smtp_server, certs, reply)
    outcome = verify(server)
    step = outcome.failed_step
    assert step is not None and step.name == "auth"
    assert step.reply_code == int(reply[:3])
    assert step.hint_code == BASIC_AUTH_DISABLED
    assert step.hint.startswith("This provider no longer accepts passwords: switch ")
    assert "Authentication to OAuth2" in step.hint
    assert step.field == "password"
    assert not outcome.transient  # permanent: retrying will not help
    assert server.auth_attempts >= 1  # the login was really tried


def test_googles_hint_still_mentions_the_app_password(
    smtp_server, certs, trust_test_ca
):
    step = verify(retired_server(smtp_server, certs, RETIRED_REPLIES[2])).failed_step
    assert "app password" in step.hint


def test_wrong_credentials_are_not_mistaken_for_retired_basic_auth(
    smtp_server, certs, trust_test_ca
):
    server = smtp_server(starttls=certs.server, users={LOGIN: "another password"})
    step = verify(server).failed_step
    assert (step.name, step.reply_code) == ("auth", 535)
    assert step.hint_code == ""
    assert "refused the username or password" in step.hint


def test_verify_on_the_page_shows_the_hint_and_its_code(
    worker, demo, smtp_server, certs, login
):
    # The worker process does not trust the test CA: a self-signed server, with
    # certificate verification skipped (Insecure).
    server = smtp_server(
        starttls=certs.self_signed,
        users={LOGIN: PASSWORD},
        behaviour=Behaviour(auth_reply=BASIC_AUTH_DISABLED_REPLY),
    )
    client = login(demo["acme_admin"])
    response = client.post(
        "/ops/smtp/test",
        {
            "host": "localhost",
            "port": str(server.port),
            "security": "starttls",
            "use_insecure": "on",
            "username": LOGIN,
            "password": PASSWORD,
            "retries": "3",
            "recipient": "partner-admin@acme.example",
            "mode": "verify",
        },
    )
    assert response.status_code == 202, response.content
    answer = client.get(response.json()["status_url"], {"wait": "20"}).json()
    assert answer["status"] == "failed"
    assert (answer["failed_step"], answer["reply_code"]) == ("auth", 535)
    assert answer["hint_code"] == BASIC_AUTH_DISABLED
    assert "switch Authentication to OAuth2" in answer["hint"]
    assert answer["field"] == "password"
    failed = [s for s in answer["steps"] if s["status"] == "failed"]
    assert failed[0]["hint_code"] == BASIC_AUTH_DISABLED
    assert PASSWORD not in json.dumps(answer)


# -- the periodic health check ------------------------------------------------------


def health_events() -> list[tuple[str, str | None]]:
    return [
        (event.type, event.detail.get("hint_code"))
        for event in AuditEvent.objects.filter(
            type__startswith="smtp_config.health."
        ).order_by("id")
    ]


def test_the_health_check_shows_a_banner_and_audits_each_state_change_once(
    demo, smtp_server, certs, trust_test_ca, login
):
    # given a partner configuration whose provider has just retired passwords
    server = retired_server(smtp_server, certs)
    configuration = SmtpConfiguration.objects.create(
        partner=demo["acme"],
        host="localhost",
        port=server.port,
        security=Security.STARTTLS,
        username=LOGIN,
        password=PASSWORD,
        sender_email="alerts@acme.example",
    )
    client = login(demo["acme_admin"])
    assert 'id="basic-auth-disabled"' not in client.get("/ops/smtp/").content.decode()

    # when the health check runs, again and again
    for _ in range(3):
        assert smtp_config_health_check(configuration_id=configuration.pk) == "failing"

    # then one event, and a banner that says what to do
    configuration.refresh_from_db()
    assert configuration.health_hint_code == BASIC_AUTH_DISABLED
    assert health_events() == [("smtp_config.health.failing", BASIC_AUTH_DISABLED)]
    event = AuditEvent.objects.get(type="smtp_config.health.failing")
    assert "no longer accepts passwords" in event.summary
    assert event.detail["step"] == "auth"
    assert event.detail["reply_code"] == 535
    page = client.get("/ops/smtp/").content.decode()
    assert 'id="basic-auth-disabled"' in page
    assert "switch Authentication to OAuth2" in page

    # when it fails for another reason (nothing listens there), that is news once
    SmtpConfiguration.objects.filter(pk=configuration.pk).update(port=free_port())
    for _ in range(2):
        assert smtp_config_health_check(configuration_id=configuration.pk) == "failing"
    assert health_events()[1:] == [("smtp_config.health.failing", None)]
    configuration.refresh_from_db()
    assert not configuration.basic_auth_disabled
    assert 'id="basic-auth-disabled"' not in client.get("/ops/smtp/").content.decode()

    # and when the server takes the login again, it recovers once
    working = smtp_server(starttls=certs.server, users={LOGIN: PASSWORD})
    SmtpConfiguration.objects.filter(pk=configuration.pk).update(port=working.port)
    for _ in range(2):
        assert smtp_config_health_check(configuration_id=configuration.pk) == "ok"
    assert health_events()[2:] == [("smtp_config.health.recovered", None)]
    configuration.refresh_from_db()
    assert configuration.health_status == HealthStatus.OK
    assert PASSWORD not in json.dumps(
        [e.detail for e in AuditEvent.objects.all()] + [configuration.health_detail]
    )


# -- the standing notice ------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("smtp.office365.com", "end of December 2026"),
        ("smtp-mail.outlook.com", "end of December 2026"),
        ("contoso-com.mail.protection.outlook.com", "end of December 2026"),
        ("smtp.gmail.com", "14 March 2025"),
        ("smtp-relay.gmail.com", "14 March 2025"),
    ],
)
def test_a_password_login_to_a_retiring_provider_shows_a_notice_with_the_date(
    demo, login, host, expected
):
    SmtpConfiguration.objects.create(
        partner=demo["acme"],
        host=host,
        security=Security.STARTTLS,
        username=LOGIN,
        password=PASSWORD,
    )
    client = login(demo["acme_admin"])
    page = client.get("/ops/smtp/").content.decode()
    assert 'data-notice="basic_auth_retirement"' in page
    assert expected in page
    notices = client.get("/event/v1/email/config").json()["notices"]
    assert [n["code"] for n in notices] == ["basic_auth_retirement"]
    assert expected in notices[0]["message"]
    assert notices[0]["level"] == "partner"


def test_no_notice_without_a_password_or_for_other_providers(demo, login):
    configuration = SmtpConfiguration.objects.create(
        partner=demo["acme"], host="smtp.office365.com", security=Security.STARTTLS
    )
    client = login(demo["acme_admin"])
    assert "basic_auth_retirement" not in client.get("/ops/smtp/").content.decode()
    assert client.get("/event/v1/email/config").json()["notices"] == []
    SmtpConfiguration.objects.filter(pk=configuration.pk).update(
        host="smtp.acme.example", username=LOGIN, password=PASSWORD
    )
    assert "basic_auth_retirement" not in client.get("/ops/smtp/").content.decode()


def test_an_organization_inheriting_the_partners_password_login_sees_the_notice(
    demo, login
):
    SmtpConfiguration.objects.create(
        partner=demo["acme"],
        host="smtp.office365.com",
        security=Security.STARTTLS,
        username=LOGIN,
        password=PASSWORD,
    )
    page = (
        login(demo["prod_admin"])
        .get("/console/infrastructure/system/settings/smtp/")
        .content.decode()
    )
    assert "The partner settings log in to Microsoft 365" in page
    assert "end of December 2026" in page
