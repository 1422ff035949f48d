"""Precedence: organization (feature on) > partner > controller > none."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from smtp.models import Level, Security, SmtpConfiguration
from smtp.selectors import smtp_config_effective

pytestmark = pytest.mark.django_db


def configure(partner, organization=None, **fields) -> SmtpConfiguration:
    values = {
        "host": "smtp.example.com",
        "port": 587,
        "security": Security.STARTTLS,
        "username": "mailer@example.com",
        "password": "pw-123",
        **fields,
    }
    return SmtpConfiguration.objects.create(
        partner=partner, organization=organization, **values
    )


def test_nothing_configured_anywhere_means_none(demo):
    effective = smtp_config_effective(
        partner=demo["acme"], organization=demo["acme-prod"]
    )
    assert effective.source == Level.NONE
    assert effective.settings is None
    assert [layer.level for layer in effective.layers] == [
        Level.ORGANIZATION,
        Level.PARTNER,
        Level.CONTROLLER,
    ]


def test_controller_defaults_apply_when_nothing_else_is_set(demo, controller_smtp):
    controller_smtp(
        ADDR="mail.controller.example",
        PORT="465",
        USERNAME="ops@controller.example",
        PASSWORD="controller-secret",
        USE_TLS="true",
    )
    effective = smtp_config_effective(
        partner=demo["acme"], organization=demo["acme-prod"]
    )
    assert effective.source == Level.CONTROLLER
    settings = effective.settings
    assert (settings.host, settings.port, settings.security) == (
        "mail.controller.example",
        465,
        Security.SSL,
    )
    assert settings.trusted and settings.password_set
    assert settings.sender_email == "ops@controller.example"


def test_controller_defaults_are_read_at_use_time(demo, controller_smtp):
    assert smtp_config_effective(partner=demo["acme"]).source == Level.NONE
    controller_smtp(ADDR="later.example", USE_TLS="false", PORT="25")
    effective = smtp_config_effective(partner=demo["acme"])
    assert effective.source == Level.CONTROLLER
    assert effective.settings.security == Security.NONE


def test_a_misconfigured_controller_is_not_used_and_says_why(demo, controller_smtp):
    controller_smtp(ADDR="mail.example", PORT="five-eight-seven")
    effective = smtp_config_effective(partner=demo["acme"])
    assert effective.source == Level.NONE
    layer = effective.layer(Level.CONTROLLER)
    assert "FW_EVENT_SMTP_SERVER_PORT" in layer.skipped_because


def test_partner_config_overrides_the_controller(demo, controller_smtp):
    controller_smtp(ADDR="mail.controller.example")
    configure(demo["acme"], host="smtp.acme.example")
    for organization in (None, demo["acme-prod"], demo["acme-dev"]):
        effective = smtp_config_effective(
            partner=demo["acme"], organization=organization
        )
        assert effective.source == Level.PARTNER
        assert effective.settings.host == "smtp.acme.example"
        assert not effective.settings.trusted


def test_org_config_overrides_partner_config_when_the_feature_is_on(demo):
    configure(demo["acme"], host="smtp.acme.example")
    configure(demo["acme"], demo["acme-prod"], host="smtp.prod.example")
    effective = smtp_config_effective(
        partner=demo["acme"], organization=demo["acme-prod"]
    )
    assert effective.source == Level.ORGANIZATION
    assert effective.settings.host == "smtp.prod.example"


def test_org_config_is_ignored_when_the_feature_is_off(demo):
    configure(demo["acme"], host="smtp.acme.example")
    configure(demo["acme"], demo["acme-dev"], host="smtp.dev.example")
    effective = smtp_config_effective(
        partner=demo["acme"], organization=demo["acme-dev"]
    )
    assert effective.source == Level.PARTNER
    assert effective.settings.host == "smtp.acme.example"
    assert "feature is off" in effective.layer(Level.ORGANIZATION).skipped_because


def test_an_organization_without_its_own_config_inherits_the_partners(demo):
    configure(demo["acme"], host="smtp.acme.example")
    effective = smtp_config_effective(
        partner=demo["acme"], organization=demo["acme-prod"]
    )
    assert effective.source == Level.PARTNER


def test_another_partners_config_never_applies(demo):
    configure(demo["globex"], host="smtp.globex.example")
    effective = smtp_config_effective(
        partner=demo["acme"], organization=demo["acme-prod"]
    )
    assert effective.source == Level.NONE


def test_an_organization_of_another_partner_is_refused(demo):
    with pytest.raises(ValueError, match="does not belong"):
        smtp_config_effective(partner=demo["acme"], organization=demo["globex-main"])


def test_sender_defaults_to_the_username_when_it_is_an_address(demo, settings):
    configure(demo["acme"], username="alerts@acme.example", sender_email="")
    assert smtp_config_effective(partner=demo["acme"]).settings.sender_email == (
        "alerts@acme.example"
    )
    SmtpConfiguration.objects.update(username="apikey", sender_email="")
    effective = smtp_config_effective(partner=demo["acme"])
    assert effective.settings.sender_email == settings.DEFAULT_FROM_EMAIL
    assert effective.settings.sender_origin == "default"


def test_the_effective_config_costs_one_query(demo):
    configure(demo["acme"])
    configure(demo["acme"], demo["acme-prod"])
    with CaptureQueriesContext(connection) as queries:
        smtp_config_effective(partner=demo["acme"], organization=demo["acme-prod"])
    assert len(queries) == 1


def test_the_password_does_not_show_in_repr(demo):
    configure(demo["acme"], password="canary-Zq8-password")
    effective = smtp_config_effective(partner=demo["acme"])
    assert "canary-Zq8-password" not in repr(effective)
    assert "canary-Zq8-password" not in str(effective.settings.password)
    assert effective.settings.password.reveal() == "canary-Zq8-password"


def test_successive_reads_each_get_their_own_tenants_rows(demo):
    # The query is compiled once and run with each caller's partner and
    # organization: no read may see the previous caller's rows.
    configure(demo["acme"], host="smtp.acme.example", sender_name="Acme")
    configure(demo["acme"], demo["acme-prod"], host="smtp.prod.example")
    configure(demo["globex"], host="smtp.globex.example")
    demo["acme-prod"].smtp_configuration_enabled = True
    demo["acme-prod"].save()
    for _ in range(2):
        prod = smtp_config_effective(
            partner=demo["acme"], organization=demo["acme-prod"]
        )
        dev = smtp_config_effective(partner=demo["acme"], organization=demo["acme-dev"])
        globex = smtp_config_effective(partner=demo["globex"])
        bare = smtp_config_effective(
            partner=demo["globex"],
            organization=demo["globex-main"],
            with_password=False,
        )
        assert prod.settings.host == "smtp.prod.example"
        assert prod.settings.sender_name == "Acme"  # inherited from the partner
        assert dev.settings.host == "smtp.acme.example"
        assert globex.settings.host == "smtp.globex.example"
        assert globex.settings.password.reveal() == "pw-123"
        assert bare.settings.host == "smtp.globex.example"
        assert bare.settings.password.reveal() != "pw-123"  # never read
