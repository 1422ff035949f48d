"""Writes of SMTP configurations: validated, atomic and audited; and their
periodic health check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.models import Category
from audit.services import actor_label, audit_event_record, event_scope
from smtp.delivery import deliver
from smtp.enums import HealthStatus
from smtp.models import SmtpConfiguration, SmtpSettingsFields
from smtp.selectors import (
    FEATURE_OFF,
    own_level,
    sender_domains_allowed,
    smtp_config_in_use,
    smtp_server_of_configuration,
)
from smtp.validators import (
    PasswordAction,
    SmtpInput,
    ValidatedSmtp,
    smtp_input_validate,
)
from tenants.models import User
from tenants.selectors import TenantScope

# Fields whose old and new values may appear in the audit log: every setting but
# the password.
AUDITED_FIELDS = SmtpSettingsFields.SETTING_FIELDS


@dataclass(frozen=True)
class SaveResult:
    configuration: SmtpConfiguration
    created: bool
    notes: tuple[str, ...]


def locked_configuration(scope: TenantScope) -> SmtpConfiguration | None:
    return (
        SmtpConfiguration.objects.select_for_update()
        .filter(own_level(partner=scope.partner, organization=scope.organization))
        .first()
    )


def where(scope: TenantScope) -> str:
    if scope.organization is not None:
        return f"organization {scope.organization.name}"
    return f"partner {scope.partner.name}"


def apply_validated(configuration: SmtpSettingsFields, valid: ValidatedSmtp) -> None:
    for name in SmtpSettingsFields.SETTING_FIELDS:
        setattr(configuration, name, getattr(valid, name))
    if valid.password_action == PasswordAction.SET:
        configuration.password = valid.new_password
    elif valid.password_action == PasswordAction.CLEAR:
        configuration.password = None


def diff(
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


def snapshot(configuration: SmtpConfiguration) -> dict[str, Any]:
    return {
        **{name: getattr(configuration, name) for name in AUDITED_FIELDS},
        "password_set": configuration.password_set,
    }


@transaction.atomic
def smtp_config_save(
    *, scope: TenantScope, data: SmtpInput, actor: User | None
) -> SaveResult:
    """Create or replace the configuration at the scope's level.

    Raises ``SmtpValidationError`` (nothing changed) when ``data`` breaks a rule,
    an address outside the partner's allowed sender domains included.
    """
    current = locked_configuration(scope)
    valid = smtp_input_validate(
        data,
        current=current,
        allowed_domains=sender_domains_allowed(partner=scope.partner),
    )
    before = snapshot(current) if current is not None else None
    configuration = current or SmtpConfiguration(
        partner=scope.partner, organization=scope.organization
    )
    apply_validated(configuration, valid)
    configuration.updated_by = actor if actor and actor.is_authenticated else None
    # A changed configuration has not been health-checked yet.
    configuration.health_status = HealthStatus.UNKNOWN
    configuration.health_detail = ""
    configuration.full_clean()
    configuration.save()
    changes = diff(before, configuration, valid)
    created = current is None
    verb = "created" if created else "updated"
    audit_event_record(
        category=Category.AUDIT,
        type=f"smtp_config.{verb}",
        summary=f"SMTP configuration {verb} for {where(scope)}",
        actor=actor_label(actor),
        **event_scope(scope),
        detail={"level": scope.level, "changes": changes},
    )
    return SaveResult(configuration=configuration, created=created, notes=valid.notes)


@transaction.atomic
def smtp_config_delete(*, scope: TenantScope, actor: User | None) -> bool:
    """Delete the configuration at the scope's level; ``False`` if there was none."""
    current = locked_configuration(scope)
    if current is None:
        return False
    before = snapshot(current)
    current.delete()
    audit_event_record(
        category=Category.AUDIT,
        type="smtp_config.deleted",
        summary=f"SMTP configuration deleted for {where(scope)}",
        actor=actor_label(actor),
        **event_scope(scope),
        detail={
            "level": scope.level,
            "deleted": {k: v for k, v in before.items() if k != "password_set"},
        },
    )
    return True


@transaction.atomic
def smtp_config_remove_password(*, scope: TenantScope, actor: User | None) -> bool:
    """Remove the stored password (and the username it belongs to); audited."""
    current = locked_configuration(scope)
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
        summary=f"SMTP password removed for {where(scope)}",
        actor=actor_label(actor),
        **event_scope(scope),
        detail={
            "level": scope.level,
            "changes": {"password": "removed", "username": [before_username, ""]},
        },
    )
    return True


# -- periodic health check -------------------------------------------------------

NOT_IN_USE_DETAIL = (
    f"Not checked: {FEATURE_OFF}, so this configuration is not used. It is "
    "checked again once support turns the feature on."
)


def _mark_not_in_use(configurations) -> None:
    """Forget the health state of configurations that are not used (not contacted).

    A "failing" banner about a server nobody sends through would be stale news;
    "unknown" with the reason is the truth until the next check.
    """
    configurations.exclude(health_detail=NOT_IN_USE_DETAIL).update(
        health_status=HealthStatus.UNKNOWN,
        health_checked_at=None,
        health_detail=NOT_IN_USE_DETAIL,
    )


def smtp_config_health_check_targets() -> list[int]:
    """The ids of the configurations the periodic check verifies: those in use.

    The others (an organization's behind its disabled feature) are never
    contacted: their health state is reset instead.
    """
    in_use = smtp_config_in_use()
    _mark_not_in_use(SmtpConfiguration.objects.exclude(in_use))
    return list(
        SmtpConfiguration.objects.filter(in_use)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def smtp_config_health_check(*, configuration_id: int) -> HealthStatus | None:
    """Verify a saved configuration (up to RCPT TO, then RSET; no mail is sent).

    Stores the result on the configuration; a SYSTEMAUDIT event is recorded only
    when the state changes into or out of failing. ``None`` if it was deleted, or
    is not in use (checked now, not when queued: it is then not contacted).
    """
    configuration = (
        SmtpConfiguration.objects.select_related("updated_by")
        .filter(pk=configuration_id)
        .first()
    )
    if configuration is None:
        return None
    not_in_use = SmtpConfiguration.objects.filter(pk=configuration_id).exclude(
        smtp_config_in_use()
    )
    if not_in_use.exists():
        _mark_not_in_use(not_in_use)
        return None
    server = smtp_server_of_configuration(configuration)
    outcome = deliver(
        server,
        None,
        sender=server.envelope_sender(),
        recipients=[server.sender_email],
        verify_only=True,
    )
    step = outcome.failed_step
    if step is not None:
        status = HealthStatus.FAILING
        detail = f"{step.name}: {step.detail} {step.hint}".strip()
    else:
        status = HealthStatus.OK
        detail = "Every step up to RCPT TO worked; nothing was sent."
    with transaction.atomic():
        current = (
            SmtpConfiguration.objects.select_for_update(of=("self",))
            .filter(smtp_config_in_use(), pk=configuration_id)
            .only("updated_at", "health_status", "partner", "organization")
            .first()
        )
        if current is None or current.updated_at != configuration.updated_at:
            # Deleted, changed or no longer in use while being checked: the
            # result is stale.
            return None
        previous = current.health_status
        SmtpConfiguration.objects.filter(pk=configuration_id).update(
            health_status=status,
            health_checked_at=timezone.now(),
            health_detail=detail[:500],
        )
        changed = status != previous and HealthStatus.FAILING in (status, previous)
        if changed:
            scope = TenantScope(
                partner=current.partner, organization=current.organization
            )
            verb = "failing" if status == HealthStatus.FAILING else "recovered"
            audit_event_record(
                category=Category.SYSTEMAUDIT,
                type=f"smtp_config.health.{verb}",
                summary=f"SMTP health check {verb} for {where(scope)}",
                **event_scope(scope),
                detail={
                    "level": scope.level,
                    "server": f"{server.host}:{server.port}",
                    "step": step.name if step else None,
                    "reply_code": step.reply_code if step else None,
                    "reason": detail,
                },
            )
    return status
