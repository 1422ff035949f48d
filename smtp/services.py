"""Writes about SMTP configurations. Every change is validated, atomic and audited."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from audit.models import Category
from audit.services import actor_label, audit_event_record
from smtp.delivery import SmtpConnection, StepFailed
from smtp.models import (
    TEST_KINDS,
    Email,
    EmailKind,
    EmailStatus,
    HealthStatus,
    SmtpConfiguration,
    SmtpDraft,
    SmtpSettingsFields,
)
from smtp.outbox import NewEmail, email_enqueue, emails_enqueue
from smtp.selectors import (
    smtp_config_effective,
    smtp_config_get,
    smtp_settings_of_configuration,
)
from smtp.validators import (
    PasswordAction,
    SmtpInput,
    SmtpValidationError,
    ValidatedSmtp,
    smtp_input_validate,
    validate_address,
)
from tenants.models import Organization, Partner, User
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


def _apply(configuration: SmtpSettingsFields, valid: ValidatedSmtp) -> None:
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
    # A changed configuration has not been health-checked yet.
    configuration.health_status = HealthStatus.UNKNOWN
    configuration.health_detail = ""
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


# -- test emails -----------------------------------------------------------------

TEST_SUBJECT = "Test email from the Ops Console"
# A test running longer than this no longer blocks its admin's next test.
TEST_STALE_AFTER = timedelta(minutes=2)


class TestEmailRefused(Exception):
    """A test email is not queued: too many, one is running, or nothing to use."""

    def __init__(self, message: str, *, status: int = 429, retry_after: int = 0):
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after


def _test_body(*, actor: User, scope: TenantScope, settings_desc: str) -> str:
    return (
        "This is a test email from the Ops Console.\n\n"
        f"{actor.email} sent it to check the SMTP configuration of "
        f"{_where(scope)}:\n\n{settings_desc}\n\n"
        "If you can read this, the configuration delivers mail.\n"
    )


def _describe(values: ValidatedSmtp | None, effective_source: str = "") -> str:
    if values is None:
        return f"  The configuration in effect ({effective_source} level)."
    security = {"none": "none", "starttls": "STARTTLS", "ssl": "implicit TLS"}
    auth = f"as {values.username}" if values.username else "none"
    return (
        f"  Server: {values.host}:{values.port}\n"
        f"  TLS: {security[values.security]}\n"
        f"  Authentication: {auth}"
    )


def _check_test_rate(actor: User) -> None:
    now = timezone.now()
    mine = Email.objects.filter(requested_by=actor, kind__in=TEST_KINDS)
    if mine.filter(
        status__in=[EmailStatus.QUEUED, EmailStatus.SENDING],
        created_at__gte=now - TEST_STALE_AFTER,
    ).exists():
        raise TestEmailRefused(
            "A test email is already running: wait for its result before starting "
            "another.",
            retry_after=2,
        )
    limit = settings.SMTP_TEST_RATE_PER_MINUTE
    recent = list(
        mine.filter(created_at__gte=now - timedelta(minutes=1))
        .order_by("created_at")
        .values_list("created_at", flat=True)
    )
    if len(recent) >= limit:
        wait = int((recent[0] + timedelta(minutes=1) - now).total_seconds()) + 1
        raise TestEmailRefused(
            f"At most {limit} test emails a minute: try again in {wait} s.",
            retry_after=wait,
        )


@transaction.atomic
def smtp_test_email_request(
    *,
    scope: TenantScope,
    actor: User,
    recipient: str,
    verify_only: bool = False,
    form: SmtpInput | None = None,
    sender: str = "",
    subject: str = "",
    body: str = "",
) -> Email:
    """Queue a test email (or a verification that sends nothing).

    With ``form``, the unsaved form values are tested (stored encrypted as a
    draft until the test ends; a blank password uses the stored one when host,
    port and username are unchanged). Without it, the configuration in effect is.
    Raises ``SmtpValidationError`` for bad input, ``TestEmailRefused`` otherwise.
    """
    errors: dict[str, list[str]] = {}
    recipient = validate_address(
        "recipient", "Recipient", recipient, errors, required=True
    )
    sender = validate_address("sender_email", "Sender", sender, errors, required=False)
    if "\r" in subject or "\n" in subject:
        errors["subject"] = ["Subject must be one line."]
    if len(subject) > 200:
        errors["subject"] = ["Subject must be at most 200 characters."]
    if len(body) > 20000:
        errors["body"] = ["Body must be at most 20,000 characters."]
    current = smtp_config_get(partner=scope.partner, organization=scope.organization)
    values: ValidatedSmtp | None = None
    if form is not None:
        try:
            values = smtp_input_validate(form, current=current)
        except SmtpValidationError as error:
            errors.update(error.errors)
    if errors:
        raise SmtpValidationError(errors)
    # Serialize one admin's requests, so that the limits hold under double clicks.
    User.objects.select_for_update().filter(pk=actor.pk).first()
    _check_test_rate(actor)
    draft = None
    source = ""
    if values is not None:
        draft = SmtpDraft(
            partner=scope.partner, organization=scope.organization, created_by=actor
        )
        _apply(draft, values)
        if values.password_action == PasswordAction.KEEP and current is not None:
            draft.password = current.password
        draft.save()
    else:
        effective = smtp_config_effective(
            partner=scope.partner, organization=scope.organization
        )
        if effective.settings is None:
            raise TestEmailRefused(
                "No SMTP configuration is in effect: save one on the SMTP page, or "
                "set the controller defaults (FW_EVENT_SMTP_SERVER_*).",
                status=409,
            )
        source = effective.source.value
    kind = EmailKind.VERIFY if verify_only else EmailKind.TEST
    return email_enqueue(
        NewEmail(
            kind=kind,
            recipient=recipient,
            subject=subject or TEST_SUBJECT,
            body=body
            or _test_body(
                actor=actor, scope=scope, settings_desc=_describe(values, source)
            ),
            partner=scope.partner,
            organization=scope.organization,
            sender=sender,
            requested_by=actor,
            draft=draft,
        )
    )


# -- system emails ---------------------------------------------------------------


@dataclass(frozen=True)
class SystemEmail:
    """A system email to send: rendered from ``templates/emails/<kind>.txt``."""

    kind: EmailKind
    to: str
    context: dict[str, Any]
    organization: Organization | None = None
    partner: Partner | None = None


def _rendered(message: SystemEmail) -> NewEmail:
    errors: dict[str, list[str]] = {}
    recipient = validate_address("to", "Recipient", message.to, errors, required=True)
    if errors:
        raise SmtpValidationError(errors)
    organization = message.organization
    partner = organization.partner if organization is not None else message.partner
    context = {**message.context, "organization": organization, "partner": partner}
    subject = " ".join(
        render_to_string(f"emails/{message.kind}_subject.txt", context).split()
    )
    return NewEmail(
        kind=message.kind,
        recipient=recipient,
        subject=subject,
        body=render_to_string(f"emails/{message.kind}.txt", context),
        partner=partner,
        organization=organization,
    )


def send_system_email(
    *,
    kind: EmailKind,
    to: str,
    context: dict[str, Any],
    organization: Organization | None = None,
    partner: Partner | None = None,
) -> Email:
    """Queue one system email rendered from ``templates/emails/<kind>.txt``.

    It goes through the configuration in effect for the organization (or the
    partner, or the controller for users without a tenant) when it is sent.
    """
    return send_system_emails(
        [SystemEmail(kind, to, context, organization=organization, partner=partner)]
    )[0]


def send_system_emails(messages: list[SystemEmail]) -> list[Email]:
    """Queue many system emails (an alert to many people) in one transaction.

    Every email keeps its own row and SYSTEMAUDIT events; the worker gets them
    in batches and sends each batch over one connection.
    """
    return emails_enqueue([_rendered(message) for message in messages])


# -- periodic health check -------------------------------------------------------


def smtp_config_health_check(*, configuration_id: int) -> HealthStatus | None:
    """Verify a saved configuration (up to RCPT TO, then RSET; no mail is sent).

    Stores the result on the configuration; a SYSTEMAUDIT event is recorded only
    when the state changes into or out of failing. ``None`` if it was deleted.
    """
    configuration = (
        SmtpConfiguration.objects.select_related("updated_by")
        .filter(pk=configuration_id)
        .first()
    )
    if configuration is None:
        return None
    settings_ = smtp_settings_of_configuration(configuration)
    connection = SmtpConnection(settings_)
    try:
        connection.open()
        connection.verify(
            sender=settings_.sender_email, recipient=settings_.sender_email
        )
    except StepFailed as failure:
        status = HealthStatus.FAILING
        step = failure.step
        detail = f"{step.name}: {step.detail} {step.hint}".strip()
    else:
        status = HealthStatus.OK
        step = None
        detail = "Every step up to RCPT TO worked; nothing was sent."
    finally:
        connection.close()
    with transaction.atomic():
        current = (
            SmtpConfiguration.objects.select_for_update()
            .filter(pk=configuration_id)
            .first()
        )
        if current is None or current.updated_at != configuration.updated_at:
            return None  # deleted or changed while being checked: result is stale
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
                summary=f"SMTP health check {verb} for {_where(scope)}",
                **_scope_ids(scope),
                detail={
                    "level": scope.level,
                    "server": f"{settings_.host}:{settings_.port}",
                    "step": step.name if step else None,
                    "reply_code": step.reply_code if step else None,
                    "reason": detail,
                },
            )
    return status
