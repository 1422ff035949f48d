"""Writes of SMTP configurations: validated, atomic and audited; and their
periodic health check."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.models import Category
from audit.services import actor_label, audit_event_record, event_scope
from core.stamps import partner_stamp, stamp_renew_on_commit
from smtp.delivery import deliver
from smtp.delivery.certificates import CertificateInfo
from smtp.delivery.hints import BASIC_AUTH_DISABLED, FAILED_OVER
from smtp.enums import HealthStatus, Level
from smtp.models import SmtpConfiguration, SmtpSettingsFields
from smtp.outbox import limits
from smtp.selectors import (
    FEATURE_OFF,
    own_level,
    sender_domains_allowed,
    smtp_config_effective,
    smtp_config_in_use,
    smtp_failover_target,
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
# the secrets, and the choices only a stored configuration has.
AUDITED_FIELDS = (*SmtpSettingsFields.SETTING_FIELDS, "failover")


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
    secrets = (
        ("password", valid.password_action, valid.new_password),
        ("oauth2_client_secret", valid.client_secret_action, valid.new_client_secret),
        ("oauth2_service_account_key", valid.key_action, valid.new_key),
    )
    for name, action, new in secrets:
        if action == PasswordAction.SET:
            setattr(configuration, name, new)
        elif action == PasswordAction.CLEAR:
            setattr(configuration, name, None)
    if valid.client_cert_action == PasswordAction.SET:
        configuration.client_cert = valid.new_client_cert or ""
        configuration.client_key = valid.new_client_key
    elif valid.client_cert_action == PasswordAction.CLEAR:
        configuration.client_cert = ""
        configuration.client_key = None


def _audited(value: Any) -> Any:
    """A setting as the audit log's JSON holds it (dates as ISO text)."""
    return value.isoformat() if isinstance(value, date) else value


# The secrets, by the name the audit log gives what happened to them.
SECRET_CHANGES = (
    ("password", "password_set", "password_action"),
    ("oauth2_client_secret", "oauth2_client_secret_set", "client_secret_action"),
    ("oauth2_service_account_key", "oauth2_service_account_key_set", "key_action"),
)


def diff(
    before: dict[str, Any] | None, configuration: SmtpConfiguration, valid
) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name in AUDITED_FIELDS:
        new = _audited(getattr(configuration, name))
        old = None if before is None else before[name]
        if before is None or old != new:
            changes[name] = [old, new]
    for name, was_set, action_name in SECRET_CHANGES:
        had = bool(before and before[was_set])
        action = getattr(valid, action_name)
        # What happened, never a value.
        if action == PasswordAction.SET:
            changes[name] = "changed" if had else "set"
        elif action == PasswordAction.CLEAR and had:
            changes[name] = "removed"
    # The certificate by its subject and expiry; the key only as what happened.
    old_cert = before["client_certificate"] if before else None
    new_cert = certificate_label(configuration)
    if old_cert != new_cert:
        changes["client_certificate"] = [old_cert, new_cert]
    had_key = bool(before and before["client_key_set"])
    if valid.client_cert_action == PasswordAction.SET:
        changes["client_key"] = "changed" if had_key else "set"
    elif valid.client_cert_action == PasswordAction.CLEAR and had_key:
        changes["client_key"] = "removed"
    return changes


def certificate_label(configuration: SmtpSettingsFields) -> str | None:
    """The client certificate as "subject, expires YYYY-MM-DD", or ``None``."""
    info = configuration.client_certificate
    if info is None:
        return None
    return f"{info.subject}, expires {info.not_after:%Y-%m-%d}"


def snapshot(configuration: SmtpConfiguration) -> dict[str, Any]:
    return {
        **{name: _audited(getattr(configuration, name)) for name in AUDITED_FIELDS},
        "password_set": configuration.password_set,
        "oauth2_client_secret_set": configuration.oauth2_client_secret_set,
        "oauth2_service_account_key_set": (
            configuration.oauth2_service_account_key_set
        ),
        "client_certificate": certificate_label(configuration),
        "client_key_set": configuration.client_key_set,
    }


@transaction.atomic
def smtp_config_save(
    *, scope: TenantScope, data: SmtpInput, actor: User | None, tested: bool = False
) -> SaveResult:
    """Create or replace the configuration at the scope's level; ``tested``: a
    verification of these values passed (``smtp_config_save_tested``).

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
    configuration.failover = valid.failover
    configuration.tested_at = timezone.now() if tested else None
    configuration.updated_by = actor if actor and actor.is_authenticated else None
    # A changed configuration has not been health-checked yet.
    configuration.health_status = HealthStatus.UNKNOWN
    configuration.health_detail = ""
    configuration.health_hint_code = ""
    configuration.full_clean()
    configuration.save()
    stamp_renew_on_commit(partner_stamp(scope.partner.pk))
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
    notes = valid.notes
    if valid.failover and _failover_level(scope) is None:
        notes += (
            "Failover is on, but no level below this one is configured: until "
            "one is, emails are deferred when this server cannot be reached.",
        )
    return SaveResult(configuration=configuration, created=created, notes=notes)


def _failover_level(scope: TenantScope) -> Level | None:
    """The level the configuration at the scope's level fails over to now."""
    effective = smtp_config_effective(
        partner=scope.partner, organization=scope.organization, with_password=False
    )
    return smtp_failover_target(effective, Level(scope.level))


@transaction.atomic
def smtp_config_delete(*, scope: TenantScope, actor: User | None) -> bool:
    """Delete the configuration at the scope's level; ``False`` if there was none."""
    current = locked_configuration(scope)
    if current is None:
        return False
    before = snapshot(current)
    current.delete()
    stamp_renew_on_commit(partner_stamp(scope.partner.pk))
    audit_event_record(
        category=Category.AUDIT,
        type="smtp_config.deleted",
        summary=f"SMTP configuration deleted for {where(scope)}",
        actor=actor_label(actor),
        **event_scope(scope),
        detail={
            "level": scope.level,
            "deleted": {k: v for k, v in before.items() if not k.endswith("_set")},
        },
    )
    return True


def _remove_stored(
    current: SmtpConfiguration,
    *,
    scope: TenantScope,
    actor: User | None,
    values: dict[str, Any],
    what: str,
    changes: dict[str, Any],
) -> None:
    """Set ``values`` on the locked configuration and audit the removal of
    ``what`` with ``changes`` (what happened, never a secret)."""
    for name, value in values.items():
        setattr(current, name, value)
    current.updated_by = actor if actor and actor.is_authenticated else None
    current.save(update_fields=[*values, "updated_by", "updated_at"])
    audit_event_record(
        category=Category.AUDIT,
        type="smtp_config.updated",
        summary=f"SMTP {what} removed for {where(scope)}",
        actor=actor_label(actor),
        **event_scope(scope),
        detail={"level": scope.level, "changes": changes},
    )


@transaction.atomic
def smtp_config_remove_password(*, scope: TenantScope, actor: User | None) -> bool:
    """Remove the stored password (and the username it belongs to); audited."""
    current = locked_configuration(scope)
    if current is None or not (current.password_set or current.username):
        return False
    _remove_stored(
        current,
        scope=scope,
        actor=actor,
        values={"password": None, "username": ""},
        what="password",
        changes={"password": "removed", "username": [current.username, ""]},
    )
    return True


@transaction.atomic
def smtp_config_remove_client_certificate(
    *, scope: TenantScope, actor: User | None
) -> bool:
    """Remove the stored client certificate and its key; audited."""
    current = locked_configuration(scope)
    if current is None or not (current.client_cert or current.client_key_set):
        return False
    _remove_stored(
        current,
        scope=scope,
        actor=actor,
        values={"client_cert": "", "client_key": None, "client_cert_expiring": False},
        what="client certificate",
        changes={
            "client_certificate": [certificate_label(current), None],
            "client_key": "removed",
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
        health_hint_code="",
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


def _record_certificate_expiry(
    configuration: SmtpConfiguration,
    certificate: CertificateInfo | None,
    *,
    expiring: bool,
) -> None:
    """One SYSTEMAUDIT event when the client certificate starts or stops
    expiring within 30 days (renewed or removed)."""
    scope = TenantScope(
        partner=configuration.partner, organization=configuration.organization
    )
    if expiring and certificate is not None:
        verb = "expiring"
        if certificate.expired():
            when = f"expired on {certificate.not_after:%Y-%m-%d}"
        else:
            when = f"expires on {certificate.not_after:%Y-%m-%d}"
        summary = f"SMTP client certificate {when} for {where(scope)}"
    else:
        verb = "renewed"
        summary = f"SMTP client certificate no longer expiring for {where(scope)}"
    audit_event_record(
        category=Category.SYSTEMAUDIT,
        type=f"smtp_config.client_certificate.{verb}",
        summary=summary,
        **event_scope(scope),
        detail={
            "level": scope.level,
            "subject": certificate.subject if certificate else None,
            "not_after": certificate.not_after.isoformat() if certificate else None,
        },
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
    # Its session takes one of the configuration's connections; it sends nothing.
    with limits.counted(server, message=False):
        outcome = deliver(
            server,
            None,
            sender=server.envelope_sender(),
            recipients=[server.sender_email],
            verify_only=True,
        )
    step = outcome.failed_step
    hint_code = step.hint_code if step is not None else ""
    if step is not None:
        status = HealthStatus.FAILING
        detail = f"{step.name}: {step.detail} {step.hint}".strip()
    else:
        status = HealthStatus.OK
        detail = "Every step up to RCPT TO worked; nothing was sent."
        token = next((s for s in outcome.steps if s.name == "token"), None)
        if token is not None:
            detail += f" {token.detail}"
    with transaction.atomic():
        current = (
            SmtpConfiguration.objects.select_for_update(of=("self",))
            .filter(smtp_config_in_use(), pk=configuration_id)
            .only(
                "updated_at",
                "health_status",
                "health_hint_code",
                "client_cert_expiring",
                "partner",
                "organization",
            )
            .first()
        )
        if current is None or current.updated_at != configuration.updated_at:
            # Deleted, changed or no longer in use while being checked: the
            # result is stale.
            return None
        previous = current.health_status
        certificate = configuration.client_certificate
        expiring = certificate is not None and certificate.expires_soon()
        SmtpConfiguration.objects.filter(pk=configuration_id).update(
            health_status=status,
            health_checked_at=timezone.now(),
            health_detail=detail[:500],
            health_hint_code=hint_code,
            client_cert_expiring=expiring,
        )
        if expiring != current.client_cert_expiring:
            _record_certificate_expiry(current, certificate, expiring=expiring)
        # News: into or out of failing, or failing for another kind of reason
        # (e.g. the provider now refuses passwords); a repeat is not.
        changed = (
            status != previous and HealthStatus.FAILING in (status, previous)
        ) or (
            status == previous == HealthStatus.FAILING
            and hint_code != current.health_hint_code
            # Found failing by a failover first: the same news, unless the
            # check knows more about why.
            and (current.health_hint_code != FAILED_OVER or bool(hint_code))
        )
        _warn_of_secret_expiry(configuration)
        if changed:
            scope = TenantScope(
                partner=current.partner, organization=current.organization
            )
            verb = "failing" if status == HealthStatus.FAILING else "recovered"
            summary = f"SMTP health check {verb} for {where(scope)}"
            if hint_code == BASIC_AUTH_DISABLED:
                summary += ": the provider no longer accepts passwords"
            audit_event_record(
                category=Category.SYSTEMAUDIT,
                type=f"smtp_config.health.{verb}",
                summary=summary,
                **event_scope(scope),
                detail={
                    "level": scope.level,
                    "server": f"{server.host}:{server.port}",
                    "step": step.name if step else None,
                    "reply_code": step.reply_code if step else None,
                    "reason": detail,
                    "hint_code": hint_code or None,
                },
            )
    return status


def _warn_of_secret_expiry(configuration: SmtpConfiguration) -> None:
    """One SYSTEMAUDIT event per client-secret expiry date, from 14 days before
    (the page shows a banner for as long)."""
    days = configuration.oauth2_secret_expiry_days
    expires_on = configuration.oauth2_client_secret_expires_on
    if days is None or configuration.oauth2_expiry_warned_for == expires_on:
        return
    SmtpConfiguration.objects.filter(pk=configuration.pk).update(
        oauth2_expiry_warned_for=expires_on
    )
    scope = TenantScope(
        partner=configuration.partner, organization=configuration.organization
    )
    when = "has expired" if days < 0 else f"expires in {days} day(s)"
    audit_event_record(
        category=Category.SYSTEMAUDIT,
        type="smtp_config.oauth2.secret_expiring",
        summary=f"OAuth2 client secret {when} for {where(scope)}",
        **event_scope(scope),
        detail={
            "level": scope.level,
            "provider": configuration.oauth2_provider,
            "client_id": configuration.oauth2_client_id,
            "expires_on": expires_on.isoformat(),
            "days_left": days,
        },
    )
