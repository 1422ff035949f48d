"""Saving, deleting and removing passwords: atomic, validated, audited."""

from __future__ import annotations

import json

import pytest

from audit.models import AuditEvent, Category
from smtp.models import SmtpConfiguration
from smtp.services import (
    smtp_config_delete,
    smtp_config_remove_password,
    smtp_config_save,
)
from smtp.validators import SmtpInput, SmtpValidationError
from tenants.selectors import TenantScope

pytestmark = pytest.mark.django_db

CANARY = "canary-pw-7Hq2xZ"


def partner_scope(demo) -> TenantScope:
    return TenantScope(partner=demo["acme"], organization=None)


def org_scope(demo) -> TenantScope:
    return TenantScope(partner=demo["acme"], organization=demo["acme-prod"])


def data(**changes) -> SmtpInput:
    values = {
        "host": "smtp.acme.example",
        "port": 587,
        "use_tls": True,
        "username": "mailer@acme.example",
        "password": CANARY,
        "retries": 3,
    }
    values.update(changes)
    return SmtpInput(**values)


def test_saving_creates_the_partner_configuration_and_audits_it(demo):
    result = smtp_config_save(
        scope=partner_scope(demo), data=data(), actor=demo["acme_admin"]
    )
    assert result.created
    configuration = SmtpConfiguration.objects.get()
    assert configuration.organization is None
    assert configuration.password == CANARY
    assert configuration.updated_by == demo["acme_admin"]
    event = AuditEvent.objects.get(type="smtp_config.created")
    assert event.category == Category.AUDIT
    assert event.actor == "partner-admin@acme.example"
    assert event.partner_id == demo["acme"].pk and event.organization_id is None
    assert event.detail["changes"]["password"] == "set"
    assert event.detail["changes"]["host"] == [None, "smtp.acme.example"]
    assert CANARY not in json.dumps(event.detail) + event.summary


def test_saving_again_replaces_and_the_diff_says_password_changed(demo):
    scope = partner_scope(demo)
    smtp_config_save(scope=scope, data=data(), actor=demo["acme_admin"])
    result = smtp_config_save(
        scope=scope,
        data=data(port=465, password="another-" + CANARY),
        actor=demo["acme_admin"],
    )
    assert not result.created
    assert SmtpConfiguration.objects.count() == 1
    event = AuditEvent.objects.get(type="smtp_config.updated")
    assert event.detail["changes"] == {
        "port": [587, 465],
        "security": ["starttls", "ssl"],
        "password": "changed",
    }


def test_blank_password_on_save_keeps_the_stored_one(demo):
    scope = partner_scope(demo)
    smtp_config_save(scope=scope, data=data(), actor=demo["acme_admin"])
    smtp_config_save(scope=scope, data=data(password=None, retries=5), actor=None)
    configuration = SmtpConfiguration.objects.get()
    assert configuration.password == CANARY
    assert configuration.retries == 5
    changes = AuditEvent.objects.get(type="smtp_config.updated").detail["changes"]
    assert "password" not in changes


def test_a_host_change_without_password_changes_nothing(demo):
    scope = partner_scope(demo)
    smtp_config_save(scope=scope, data=data(), actor=demo["acme_admin"])
    with pytest.raises(SmtpValidationError) as caught:
        smtp_config_save(
            scope=scope,
            data=data(host="smtp.elsewhere.example", password=None),
            actor=demo["acme_admin"],
        )
    assert "Host changed" in caught.value.errors["password"][0]
    configuration = SmtpConfiguration.objects.get()
    assert configuration.host == "smtp.acme.example"
    assert configuration.password == CANARY
    assert not AuditEvent.objects.filter(type="smtp_config.updated").exists()


def test_a_host_change_that_drops_authentication_clears_the_password(demo):
    scope = partner_scope(demo)
    smtp_config_save(scope=scope, data=data(), actor=demo["acme_admin"])
    result = smtp_config_save(
        scope=scope,
        data=data(host="relay.internal.example", username="", password=None),
        actor=demo["acme_admin"],
    )
    configuration = SmtpConfiguration.objects.get()
    assert configuration.host == "relay.internal.example"
    assert configuration.password is None and configuration.username == ""
    assert "Stored password removed" in result.notes[0]
    changes = AuditEvent.objects.get(type="smtp_config.updated").detail["changes"]
    assert changes["password"] == "removed"


def test_remove_password_clears_credentials_and_audits(demo):
    scope = org_scope(demo)
    smtp_config_save(scope=scope, data=data(), actor=demo["prod_admin"])
    assert smtp_config_remove_password(scope=scope, actor=demo["prod_admin"])
    configuration = SmtpConfiguration.objects.get()
    assert configuration.password is None and configuration.username == ""
    event = AuditEvent.objects.filter(type="smtp_config.updated").get()
    assert event.organization_id == demo["acme-prod"].pk
    assert event.detail["changes"]["password"] == "removed"


def test_delete_removes_the_level_and_audits(demo):
    scope = org_scope(demo)
    smtp_config_save(scope=scope, data=data(), actor=demo["prod_admin"])
    assert smtp_config_delete(scope=scope, actor=demo["prod_admin"])
    assert not SmtpConfiguration.objects.exists()
    event = AuditEvent.objects.get(type="smtp_config.deleted")
    assert event.detail["deleted"]["host"] == "smtp.acme.example"
    assert CANARY not in json.dumps(event.detail)
    assert not smtp_config_delete(scope=scope, actor=demo["prod_admin"])


def test_partner_and_org_configurations_are_separate_rows(demo):
    smtp_config_save(scope=partner_scope(demo), data=data(), actor=None)
    smtp_config_save(scope=org_scope(demo), data=data(host="o.example"), actor=None)
    assert SmtpConfiguration.objects.filter(organization__isnull=True).count() == 1
    assert SmtpConfiguration.objects.get(organization=demo["acme-prod"]).host == (
        "o.example"
    )
