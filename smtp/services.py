"""Writes about SMTP configurations. Every change is validated, atomic and audited."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction

from audit.models import Category
from audit.services import actor_label, audit_event_record
from smtp.models import SmtpConfiguration
from smtp.validators import (
    PasswordAction,
    SmtpInput,
    ValidatedSmtp,
    smtp_input_validate,
)
from tenants.models import User
from tenants.selectors import TenantScope

# Fields whose old and new values may appear in the audit log (never the password).
AUDITED_FIELDS = (
    "host",
    "port",
    "security",
    "use_insecure",
    "username",
    "retries",
    "sender_email",
)


@dataclass(frozen=True)
class SaveResult:
    configuration: SmtpConfiguration
    created: bool
    notes: tuple[str, ...]


def _locked_configuration(scope: TenantScope) -> SmtpConfiguration | None:
    queryset = SmtpConfiguration.objects.select_for_update()
    if scope.organization is not None:
        return queryset.filter(organization=scope.organization).first()
    return queryset.filter(partner=scope.partner, organization__isnull=True).first()


def _scope_ids(scope: TenantScope) -> dict[str, int | None]:
    return {
        "partner_id": scope.partner.pk,
        "organization_id": scope.organization.pk if scope.organization else None,
    }


def _where(scope: TenantScope) -> str:
    if scope.organization is not None:
        return f"organization {scope.organization.name}"
    return f"partner {scope.partner.name}"


def _apply(configuration: SmtpConfiguration, valid: ValidatedSmtp) -> None:
    for name in AUDITED_FIELDS:
        setattr(configuration, name, getattr(valid, name))
    if valid.password_action == PasswordAction.SET:
        configuration.password = valid.new_password
    elif valid.password_action == PasswordAction.CLEAR:
        configuration.password = None


def _diff(
    before: dict[str, Any] | None, configuration: SmtpConfiguration, valid
) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name in AUDITED_FIELDS:
        new = getattr(configuration, name)
        old = None if before is None else before[name]
        if before is None or old != new:
            changes[name] = [old, new]
    had_password = bool(before and before["password_set"])
    if valid.password_action == PasswordAction.SET:
        changes["password"] = "changed" if had_password else "set"
    elif valid.password_action == PasswordAction.CLEAR and had_password:
        changes["password"] = "removed"  # noqa: S105 (what happened, not a value)
    return changes


def _snapshot(configuration: SmtpConfiguration) -> dict[str, Any]:
    return {
        **{name: getattr(configuration, name) for name in AUDITED_FIELDS},
        "password_set": configuration.password_set,
    }


@transaction.atomic
def smtp_config_save(
    *, scope: TenantScope, data: SmtpInput, actor: User | None
) -> SaveResult:
    """Create or replace the configuration at the scope's level.

    Raises ``SmtpValidationError`` (nothing changed) when ``data`` breaks a rule.
    """
    current = _locked_configuration(scope)
    valid = smtp_input_validate(data, current=current)
    before = _snapshot(current) if current is not None else None
    configuration = current or SmtpConfiguration(
        partner=scope.partner, organization=scope.organization
    )
    _apply(configuration, valid)
    configuration.updated_by = actor if actor and actor.is_authenticated else None
    configuration.full_clean()
    configuration.save()
    changes = _diff(before, configuration, valid)
    created = current is None
    verb = "created" if created else "updated"
    audit_event_record(
        category=Category.AUDIT,
        type=f"smtp_config.{verb}",
        summary=f"SMTP configuration {verb} for {_where(scope)}",
        actor=actor_label(actor),
        **_scope_ids(scope),
        detail={"level": scope.level, "changes": changes},
    )
    return SaveResult(configuration=configuration, created=created, notes=valid.notes)


@transaction.atomic
def smtp_config_delete(*, scope: TenantScope, actor: User | None) -> bool:
    """Delete the configuration at the scope's level; ``False`` if there was none."""
    current = _locked_configuration(scope)
    if current is None:
        return False
    before = _snapshot(current)
    current.delete()
    audit_event_record(
        category=Category.AUDIT,
        type="smtp_config.deleted",
        summary=f"SMTP configuration deleted for {_where(scope)}",
        actor=actor_label(actor),
        **_scope_ids(scope),
        detail={
            "level": scope.level,
            "deleted": {k: v for k, v in before.items() if k != "password_set"},
        },
    )
    return True


@transaction.atomic
def smtp_config_remove_password(*, scope: TenantScope, actor: User | None) -> bool:
    """Remove the stored password (and the username it belongs to); audited."""
    current = _locked_configuration(scope)
    if current is None or not (current.password_set or current.username):
        return False
    before_username = current.username
    current.password = None
    current.username = ""
    current.updated_by = actor if actor and actor.is_authenticated else None
    current.save(update_fields=["password", "username", "updated_by", "updated_at"])
    audit_event_record(
        category=Category.AUDIT,
        type="smtp_config.updated",
        summary=f"SMTP password removed for {_where(scope)}",
        actor=actor_label(actor),
        **_scope_ids(scope),
        detail={
            "level": scope.level,
            "changes": {"password": "removed", "username": [before_username, ""]},
        },
    )
    return True
