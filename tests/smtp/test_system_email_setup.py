"""A system email is rendered with its tenant's branding and sender from this
process's copy (``smtp.selectors.system_email_setup``); every service that changes
them renews the partner's stamp, so the next email after a change, in any
process, is rendered with the change."""

from __future__ import annotations

import os

import pytest

from core.stamps import partner_stamp, stamp_current
from smtp.enums import EmailKind
from smtp.models import Email, SmtpConfiguration
from smtp.services import send_system_email, smtp_config_delete, smtp_config_save
from smtp.services.identity import BrandingInput, email_branding_save
from smtp.validators import SmtpInput
from tenants.selectors import TenantScope
from tenants.services import organization_smtp_feature_set

pytestmark = [
    # The renewals run after commit.
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL"),
    # No worker sends these alerts: only their rendering is looked at.
    pytest.mark.usefixtures("private_queue"),
]


def alert(organization) -> Email:
    return send_system_email(
        kind=EmailKind.ALERT,
        to="oncall@acme.example",
        context={"title": "Disk almost full", "message": "Node 3 is at 91%."},
        organization=organization,
    )


def domain_of(email: Email) -> str:
    return email.message_id.rsplit("@", 1)[1].rstrip(">")


def partner_config(scope: TenantScope, sender: str) -> None:
    smtp_config_save(
        scope=scope,
        data=SmtpInput(host="smtp.example.net", use_tls=False, sender_email=sender),
        actor=None,
    )


def test_a_branding_change_is_in_the_next_email(demo):
    acme, prod = demo["acme"], demo["acme-prod"]
    scope = TenantScope(partner=acme, organization=None)
    email_branding_save(
        scope=scope, data=BrandingInput(product_name="Rocket Mail"), actor=None
    )
    assert "Rocket Mail" in alert(prod).html_body
    stamp = stamp_current(partner_stamp(acme.pk))
    # when: the product name changes
    email_branding_save(
        scope=scope, data=BrandingInput(product_name="Comet Mail"), actor=None
    )
    # then: the stamp changed, and the next email has the new name
    assert stamp_current(partner_stamp(acme.pk)) != stamp
    body = alert(prod).html_body
    assert "Comet Mail" in body
    assert "Rocket Mail" not in body


def test_a_sender_change_is_in_the_next_emails_message_id(demo):
    acme, prod = demo["acme"], demo["acme-prod"]
    scope = TenantScope(partner=acme, organization=None)
    partner_config(scope, "noreply@first.example")
    assert domain_of(alert(prod)) == "first.example"
    partner_config(scope, "noreply@second.example")
    assert domain_of(alert(prod)) == "second.example"
    # and: once deleted, the controller's (none here: the console's own name)
    smtp_config_delete(scope=scope, actor=None)
    assert domain_of(alert(prod)) not in ("first.example", "second.example")


def test_the_organizations_feature_switch_is_in_the_next_email(demo):
    acme, prod = demo["acme"], demo["acme-prod"]
    partner_config(TenantScope(partner=acme, organization=None), "a@acme.example")
    # given: the organization's own configuration, its feature off
    organization_smtp_feature_set(organization=prod, enabled=False, actor=None)
    SmtpConfiguration.objects.create(
        partner=acme,
        organization=prod,
        host="smtp.prod.example",
        sender_email="noreply@prod.example",
    )
    assert domain_of(alert(prod)) == "acme.example"
    # when: support switches the feature on
    organization_smtp_feature_set(organization=prod, enabled=True, actor=None)
    # then: the organization's sender is in effect for its next email
    assert domain_of(alert(prod)) == "prod.example"
    # and: off again, the partner's
    organization_smtp_feature_set(organization=prod, enabled=False, actor=None)
    assert domain_of(alert(prod)) == "acme.example"
