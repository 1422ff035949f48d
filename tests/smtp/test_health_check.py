"""The periodic SMTP health check: verify, store, audit once per state change."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from audit.models import AuditEvent, Category
from smtp.models import HealthStatus, Security, SmtpConfiguration
from smtp.services import smtp_config_health_check
from smtp.tasks import health_check_all_task, health_check_task
from tests.support.smtp_servers import free_port
from tests.support.worker import wait_until

pytestmark = pytest.mark.django_db


def health_events() -> list[str]:
    return list(
        AuditEvent.objects.filter(type__startswith="smtp_config.health.")
        .order_by("id")
        .values_list("type", flat=True)
    )


def test_failing_and_recovery_are_audited_once_each(demo, smtp_server):
    configuration = SmtpConfiguration.objects.create(
        partner=demo["acme"],
        host="127.0.0.1",
        port=free_port(),
        security=Security.NONE,
        sender_email="alerts@acme.example",
    )
    assert smtp_config_health_check(configuration_id=configuration.pk) == "failing"
    assert smtp_config_health_check(configuration_id=configuration.pk) == "failing"
    configuration.refresh_from_db()
    assert configuration.health_status == HealthStatus.FAILING
    assert configuration.health_detail.startswith("connect:")
    assert health_events() == ["smtp_config.health.failing"]
    event = AuditEvent.objects.get(type="smtp_config.health.failing")
    assert event.category == Category.SYSTEMAUDIT
    assert event.partner_id == demo["acme"].pk
    assert event.detail["step"] == "connect"
    # The server comes up: the next check recovers, once.
    server = smtp_server()
    SmtpConfiguration.objects.filter(pk=configuration.pk).update(port=server.port)
    assert smtp_config_health_check(configuration_id=configuration.pk) == "ok"
    assert smtp_config_health_check(configuration_id=configuration.pk) == "ok"
    assert health_events() == [
        "smtp_config.health.failing",
        "smtp_config.health.recovered",
    ]
    assert server.messages == []  # verification only: nothing was sent


def test_the_check_sends_no_mail_and_goes_up_to_rcpt_to(demo, smtp_server):
    server = smtp_server()
    configuration = SmtpConfiguration.objects.create(
        partner=demo["acme"], host="127.0.0.1", port=server.port, security=Security.NONE
    )
    assert smtp_config_health_check(configuration_id=configuration.pk) == "ok"
    configuration.refresh_from_db()
    assert configuration.health_checked_at is not None
    assert "nothing was sent" in configuration.health_detail
    assert server.messages == []
    assert health_events() == []  # unknown -> ok is not news


def test_saving_resets_the_health_state(demo, login):
    configuration = SmtpConfiguration.objects.create(
        partner=demo["acme"],
        host="smtp.acme.example",
        security=Security.STARTTLS,
        health_status=HealthStatus.FAILING,
        health_detail="connect: refused",
    )
    login(demo["acme_admin"]).post(
        "/ops/smtp/",
        {
            "action": "save",
            "host": "smtp2.acme.example",
            "port": "587",
            "security": "starttls",
            "retries": "3",
        },
    )
    configuration.refresh_from_db()
    assert configuration.health_status == HealthStatus.UNKNOWN


def test_failing_configurations_show_banners(demo, login):
    SmtpConfiguration.objects.create(
        partner=demo["acme"],
        host="smtp.acme.example",
        health_status=HealthStatus.FAILING,
        health_detail="auth: auth failed (535) for u@acme.example.",
    )
    SmtpConfiguration.objects.create(
        partner=demo["acme"],
        organization=demo["acme-prod"],
        host="smtp.prod.example",
        health_status=HealthStatus.FAILING,
        health_detail="tls: certificate expired",
    )
    client = login(demo["acme_admin"])
    smtp_page = client.get("/ops/smtp/").content.decode()
    assert 'id="health-failing"' in smtp_page
    assert "auth failed (535)" in smtp_page
    organizations = client.get("/ops/organizations/").content.decode()
    assert 'id="partner-health-failing"' in organizations
    assert "failing health check" in organizations
    org_page = (
        login(demo["prod_admin"])
        .get("/console/infrastructure/system/settings/smtp/")
        .content.decode()
    )
    assert "certificate expired" in org_page


def test_a_configuration_changed_during_the_check_keeps_no_stale_result(
    demo, monkeypatch
):
    from smtp.delivery import SmtpConnection

    configuration = SmtpConfiguration.objects.create(
        partner=demo["acme"], host="127.0.0.1", port=free_port(), security=Security.NONE
    )
    original = SmtpConnection.open

    def open_and_change_meanwhile(self):
        SmtpConfiguration.objects.get(pk=configuration.pk).save()  # updated_at moves
        return original(self)

    monkeypatch.setattr(SmtpConnection, "open", open_and_change_meanwhile)
    assert smtp_config_health_check(configuration_id=configuration.pk) is None
    configuration.refresh_from_db()
    assert configuration.health_status == HealthStatus.UNKNOWN


SMTP_USER = "mailer@acme.example"
SMTP_PASSWORD = "canary-health-pw-Lm4"


def authenticated(organization_or_partner, server, **fields) -> SmtpConfiguration:
    """A configuration that logs in to ``server`` with the stored password."""
    if organization_or_partner.__class__.__name__ == "Organization":
        owner = {
            "partner": organization_or_partner.partner,
            "organization": organization_or_partner,
        }
    else:
        owner = {"partner": organization_or_partner}
    return SmtpConfiguration.objects.create(
        **owner,
        host="127.0.0.1",
        port=server.port,
        username=SMTP_USER,
        password=SMTP_PASSWORD,
        sender_email="alerts@acme.example",
        **fields,
    )


def not_checked_because_off(configuration: SmtpConfiguration) -> bool:
    configuration.refresh_from_db()
    return configuration.health_detail.startswith("Not checked")


def test_an_organization_configuration_behind_a_disabled_feature_is_not_contacted(
    demo, smtp_server, certs, trust_test_ca
):
    # given: acme-dev has the SMTP feature off, acme-prod on; both log in to a server
    off_server = smtp_server(starttls=certs.server, users={SMTP_USER: SMTP_PASSWORD})
    on_server = smtp_server(starttls=certs.server, users={SMTP_USER: SMTP_PASSWORD})
    off = authenticated(
        demo["acme-dev"],
        off_server,
        security=Security.STARTTLS,
        health_status=HealthStatus.FAILING,
        health_detail="auth: auth failed (535)",
    )
    on = authenticated(demo["acme-prod"], on_server, security=Security.STARTTLS)
    # when
    assert smtp_config_health_check(configuration_id=off.pk) is None
    assert smtp_config_health_check(configuration_id=on.pk) == "ok"
    # then: the disabled one saw no connection and no password; the other logged in
    assert (off_server.connections, off_server.auth_attempts) == (0, 0)
    assert (on_server.connections, on_server.auth_attempts) == (1, 1)
    off.refresh_from_db()
    assert off.health_status == HealthStatus.UNKNOWN  # no stale "failing" banner
    assert off.health_detail.startswith("Not checked")
    assert "feature is off" in off.health_detail
    assert health_events() == []


def test_beat_and_queued_checks_skip_an_organization_with_the_feature_off(
    worker, demo, smtp_server, certs
):
    # The worker has no test CA: implicit TLS with verification off, AUTH over it.
    def server():
        return smtp_server(
            implicit_tls=certs.self_signed, users={SMTP_USER: SMTP_PASSWORD}
        )

    tls = {"security": Security.SSL, "use_insecure": True}
    partner_server, on_server, off_server = server(), server(), server()
    partner = authenticated(demo["acme"], partner_server, **tls)
    on = authenticated(demo["acme-prod"], on_server, **tls)
    off = authenticated(
        demo["acme-dev"], off_server, health_status=HealthStatus.FAILING, **tls
    )
    # when: a check of it queued (say, before the feature was turned off), then
    # the beat's fan-out
    health_check_task.delay(configuration_id=off.pk)
    health_check_all_task.delay()

    # then
    def checked(configuration):
        configuration.refresh_from_db()
        return configuration.health_status == HealthStatus.OK

    wait_until(lambda: checked(partner) and checked(on), timeout=30)
    wait_until(lambda: not_checked_because_off(off), timeout=30)
    assert (partner_server.auth_attempts, on_server.auth_attempts) == (1, 1)
    assert (off_server.connections, off_server.auth_attempts) == (0, 0)
    assert off.health_status == HealthStatus.UNKNOWN


def test_the_organization_list_shows_a_configuration_behind_the_feature_as_unused(
    demo, login
):
    SmtpConfiguration.objects.create(
        partner=demo["acme"],
        organization=demo["acme-dev"],
        host="smtp.dev.example",
        health_status=HealthStatus.FAILING,
        health_detail="tls: certificate expired",
    )
    page = login(demo["acme_admin"]).get("/ops/organizations/").content.decode()
    row = page.split("acme-dev", 1)[1].split("</tr>", 1)[0]
    assert "failing health check" not in row
    assert "not used: feature off" in row


def test_beat_schedules_the_check_unless_turned_off():
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.CELERY_BEAT_SCHEDULE)"
    )
    base = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    on = subprocess.run(
        [sys.executable, "-c", code], env=base, capture_output=True, text=True
    )
    off = subprocess.run(
        [sys.executable, "-c", code],
        env={**base, "SMTP_HEALTHCHECK_INTERVAL": "0"},
        capture_output=True,
        text=True,
    )
    assert "smtp.health_check_all" in on.stdout and "1800.0" in on.stdout
    assert off.stdout.strip() == "{}"
