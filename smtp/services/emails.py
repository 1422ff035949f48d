"""Writes that queue emails: test emails (Send Test Email, verification) and
system emails (account setup, password reset, alerts)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.addresses import AddressError, ascii_domain, split_address
from smtp.enums import (
    TEST_KINDS,
    AuthMethod,
    EmailKind,
    EmailStatus,
    OAuth2Provider,
    Security,
)
from smtp.identity import check_allowed_domain
from smtp.models import Email, SmtpDraft
from smtp.outbox import NewEmail, email_enqueue, emails_enqueue
from smtp.selectors import (
    EffectiveSmtp,
    SystemEmailSetup,
    effective_sender,
    email_branding,
    email_wait_final,
    sender_domains_allowed,
    smtp_config_effective,
    smtp_config_get,
    smtp_config_is_own,
    smtp_test_recipient_allowed,
    system_email_setup,
)
from smtp.services.config import (
    SaveResult,
    apply_validated,
    smtp_config_save,
    where,
)
from smtp.services.rendering import email_preview_render, email_render
from smtp.validators import (
    PasswordAction,
    SmtpInput,
    SmtpValidationError,
    ValidatedSmtp,
    smtp_input_validate,
    validate_address,
    validate_one_line,
)
from tenants.models import Organization, Partner, User
from tenants.selectors import TenantScope


def message_domain(sender: str) -> str:
    """The domain a message from ``sender`` takes its Message-ID on (A-labels);
    "" when there is none (the console's own name is used then)."""
    try:
        return ascii_domain(split_address(sender)[1]).lower()
    except AddressError:
        return ""


# -- test emails -----------------------------------------------------------------

TEST_SUBJECT = "Test email from the Ops Console"
# A test running longer than this no longer blocks its admin's next test.
TEST_STALE_AFTER = timedelta(minutes=2)


class TestEmailRefused(Exception):
    """A test email is not queued; ``retry_after`` seconds, when waiting helps."""

    def __init__(self, message: str, *, retry_after: int = 0):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class TestEmailBusy(TestEmailRefused):
    """Too many tests a minute, or one still running: try again later."""


class TestEmailConflict(TestEmailRefused):
    """Nothing to test: no configuration in effect, or it changed meanwhile."""


def _test_body(*, actor: User, scope: TenantScope, settings_desc: str) -> str:
    return (
        f"{actor.email} sent it to check the SMTP configuration of "
        f"{where(scope)}:\n\n{settings_desc}\n\n"
        "If you can read this, the configuration delivers mail.\n"
    )


def _describe(values: ValidatedSmtp | None, effective_source: str = "") -> str:
    if values is None:
        return f"  The configuration in effect ({effective_source} level)."
    if values.auth_method == AuthMethod.OAUTH2:
        provider = OAuth2Provider(values.oauth2_provider).label
        auth = f"OAuth2 ({provider}) as {values.username}"
    elif values.auth_method != AuthMethod.PASSWORD:
        auth = AuthMethod(values.auth_method).label
    else:
        auth = f"as {values.username}" if values.username else "none"
    return (
        f"  Server: {values.host}:{values.port}\n"
        f"  TLS: {Security(values.security).label}\n"
        f"  Authentication: {auth}"
    )


def _check_per_minute(tests, *, limit: int, whose: str) -> None:
    """Refuse when ``tests`` has ``limit`` emails from the last minute."""
    now = timezone.now()
    recent = list(
        tests.filter(created_at__gte=now - timedelta(minutes=1))
        .order_by("created_at")
        .values_list("created_at", flat=True)[:limit]
    )
    if len(recent) >= limit:
        wait = int((recent[0] + timedelta(minutes=1) - now).total_seconds()) + 1
        raise TestEmailBusy(
            f"At most {limit} test emails a minute{whose}: try again in {wait} s.",
            retry_after=wait,
        )


def _check_test_rate(actor: User) -> None:
    mine = Email.objects.filter(requested_by=actor, kind__in=TEST_KINDS)
    if mine.filter(
        status__in=[EmailStatus.QUEUED, EmailStatus.SENDING],
        created_at__gte=timezone.now() - TEST_STALE_AFTER,
    ).exists():
        raise TestEmailBusy(
            "A test email is already running: wait for its result before starting "
            "another.",
            retry_after=2,
        )
    _check_per_minute(mine, limit=settings.SMTP_TEST_RATE_PER_MINUTE, whose="")


# Whose configuration a test uses, when it is not the caller's level's own.
OTHER_LEVEL = {"partner": "the partner's", "controller": "the controller's default"}


def _check_other_level_test(
    *,
    scope: TenantScope,
    effective: EffectiveSmtp,
    recipient: str,
    sender: str,
    subject: str,
    body: str,
    errors: dict[str, list[str]],
) -> None:
    """A test through a configuration the caller does not own is a standard test
    to the caller's own users, from that configuration's own sender.

    Otherwise an organization admin could send anything to anyone through its
    partner's authenticated relay (or a partner admin through the controller's).
    """
    through = (
        f"this test goes through {OTHER_LEVEL[effective.source.value]} SMTP "
        f"configuration, which your {scope.level} does not own"
    )
    if "recipient" not in errors and not smtp_test_recipient_allowed(
        partner=scope.partner, organization=scope.organization, address=recipient
    ):
        users = (
            "a user of your organization"
            if scope.organization is not None
            else "a user of your partner or of one of its organizations"
        )
        errors.setdefault("recipient", []).append(
            f"Recipient must be {users}: {through}. Save a configuration of your "
            "own to test with any address."
        )
    own_sender = effective.settings.sender_email
    if sender and "sender_email" not in errors and sender.lower() != own_sender.lower():
        errors.setdefault("sender_email", []).append(
            f"Sender must be empty or the configuration's own sender ({own_sender}): "
            f"{through}."
        )
    for name, label, value in (("subject", "Subject", subject), ("body", "Body", body)):
        if value:
            errors.setdefault(name, []).append(
                f"{label} must be empty: {through}, so it sends the standard test text."
            )


def _pinned_copy(*, scope: TenantScope, actor: User) -> SmtpDraft:
    """The caller's own configuration, copied as the draft its test goes through.

    A test of one's own configuration may go anywhere; pinned to a copy, it
    cannot end up on another level's server when the configuration is deleted
    (or its feature turned off) before a worker sends it.
    """
    configuration = smtp_config_get(
        partner=scope.partner, organization=scope.organization
    )
    if configuration is None:  # deleted since the configuration in effect was read
        raise TestEmailConflict("The SMTP configuration changed meanwhile: try again.")
    draft = SmtpDraft(
        partner=scope.partner, organization=scope.organization, created_by=actor
    )
    draft.copy_settings_from(configuration)
    draft.save()
    return draft


def _check_tenant_rate(scope: TenantScope) -> None:
    """At most SMTP_TEST_RATE_PER_TENANT_PER_MINUTE tests through a configuration
    the tenant does not own, whichever of its admins asks.

    Those are the tenant's tests without a draft: tests of its own configuration
    go through a pinned copy, tests of form values through their draft.
    """
    # Serialize the tenant's requests, so that the limit holds across its admins.
    if scope.organization is not None:
        Organization.objects.select_for_update().filter(
            pk=scope.organization.pk
        ).first()
    else:
        Partner.objects.select_for_update().filter(pk=scope.partner.pk).first()
    tests = Email.objects.filter(
        kind__in=TEST_KINDS,
        draft__isnull=True,
        partner=scope.partner,
        organization=scope.organization,
    )
    _check_per_minute(
        tests,
        limit=settings.SMTP_TEST_RATE_PER_TENANT_PER_MINUTE,
        whose=f" for your {scope.level} through a configuration it does not own",
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

    With ``form``, the unsaved form values (always of the caller's own level)
    are tested: stored encrypted as a draft until the test ends; a blank
    password uses the stored one only when the validators allow it (same host,
    port and username, no weaker server checks). Without it, the configuration
    in effect is; when it belongs to another level than the caller's (an
    organization using its partner's or the controller's, a partner the
    controller's), only the standard test goes, to users of the caller's
    tenant, from that configuration's sender, within a per-tenant limit too.
    Raises ``SmtpValidationError`` for bad input, ``TestEmailRefused`` otherwise.
    """
    errors: dict[str, list[str]] = {}
    recipient = validate_address(
        "recipient", "Recipient", recipient, errors, required=True
    )
    sender = validate_address("sender_email", "Sender", sender, errors, required=False)
    validate_one_line("subject", "Subject", subject, errors)
    if len(subject) > 200:
        errors.setdefault("subject", []).append(
            "Subject must be at most 200 characters."
        )
    if len(body) > 20000:
        errors["body"] = ["Body must be at most 20,000 characters."]
    current = None
    values: ValidatedSmtp | None = None
    effective: EffectiveSmtp | None = None
    other_level = False
    allowed_domains = sender_domains_allowed(partner=scope.partner)
    if sender:
        check_allowed_domain("sender_email", "Sender", sender, allowed_domains, errors)
    if form is not None:
        current = smtp_config_get(
            partner=scope.partner, organization=scope.organization
        )
        try:
            values = smtp_input_validate(
                form, current=current, allowed_domains=allowed_domains
            )
        except SmtpValidationError as error:
            errors.update(error.errors)
    else:
        effective = smtp_config_effective(
            partner=scope.partner, organization=scope.organization
        )
        other_level = effective.settings is not None and not smtp_config_is_own(
            effective=effective, level=scope.level
        )
        if other_level:
            _check_other_level_test(
                scope=scope,
                effective=effective,
                recipient=recipient,
                sender=sender,
                subject=subject,
                body=body,
                errors=errors,
            )
            sender = ""  # the configuration's own, when it is sent
    if errors:
        raise SmtpValidationError(errors)
    # Serialize one admin's requests, so that the limits hold under double clicks.
    User.objects.select_for_update().filter(pk=actor.pk).first()
    _check_test_rate(actor)
    if other_level:
        _check_tenant_rate(scope)
    draft = None
    source = ""
    if values is not None:
        draft = SmtpDraft(
            partner=scope.partner, organization=scope.organization, created_by=actor
        )
        apply_validated(draft, values)
        if values.password_action == PasswordAction.KEEP and current is not None:
            draft.password = current.password
        if values.client_cert_action == PasswordAction.KEEP and current is not None:
            draft.client_cert = current.client_cert
            draft.client_key = current.client_key
        draft.save()
    else:
        if effective.settings is None:
            raise TestEmailConflict(
                "No SMTP configuration is in effect: save one on the SMTP page, or "
                "set the controller defaults (FW_EVENT_SMTP_SERVER_*)."
            )
        source = effective.source.value
        if not other_level:
            draft = _pinned_copy(scope=scope, actor=actor)
    kind = EmailKind.VERIFY if verify_only else EmailKind.TEST
    if sender:
        from_address = sender
    elif values is not None:
        from_address = effective_sender(
            configured=values.sender_email, username=values.username
        )[0]
    else:
        from_address = effective.settings.sender_email
    rendered = email_render(
        kind=EmailKind.TEST,
        context={
            "body": body
            or _test_body(
                actor=actor, scope=scope, settings_desc=_describe(values, source)
            ),
            "custom": bool(body),
            "organization": scope.organization,
            "partner": scope.partner,
            "user": actor,
        },
        recipient=recipient,
        branding=email_branding(partner=scope.partner),
        subject=subject,
    )
    return email_enqueue(
        NewEmail(
            kind=kind,
            recipient=recipient,
            subject=rendered.subject,
            body=rendered.text,
            html_body=rendered.html,
            partner=scope.partner,
            organization=scope.organization,
            sender=sender,
            requested_by=actor,
            draft=draft,
            message_domain=message_domain(from_address),
        )
    )


# How recent a verification of the same server must be for Save & test to take
# it instead of verifying again.
VERIFIED_WITHIN = timedelta(minutes=10)


@dataclass(frozen=True)
class TestedSave:
    """What Save & test did: saved (``saved``) only if ``verification`` passed."""

    saved: SaveResult | None
    verification: Email


def smtp_config_save_tested(
    *,
    scope: TenantScope,
    data: SmtpInput,
    actor: User,
    recipient: str,
    verified_email_id: int | None = None,
) -> TestedSave:
    """Save & test: verify ``data`` (every step up to RCPT TO, nothing sent) and
    save it only if that passed, marked as tested.

    ``verified_email_id``: a verification the page already ran on these values
    (the admin watched its steps); it is taken when it is this admin's, of this
    tenant, passed within ``VERIFIED_WITHIN`` and went to the same server.
    Otherwise the values are verified now, waiting for the worker up to the
    session deadline. Raises ``SmtpValidationError`` and ``TestEmailRefused``
    like ``smtp_test_email_request``.
    """
    verification = _recent_verification(
        scope=scope, actor=actor, data=data, email_id=verified_email_id
    )
    if verification is None:
        verification = smtp_test_email_request(
            scope=scope,
            actor=actor,
            recipient=recipient or actor.email,
            verify_only=True,
            form=data,
        )
        verification = email_wait_final(
            email=verification, seconds=settings.SMTP_SESSION_DEADLINE + 5
        )
    if verification.status != EmailStatus.SENT:
        return TestedSave(saved=None, verification=verification)
    saved = smtp_config_save(scope=scope, data=data, actor=actor, tested=True)
    return TestedSave(saved=saved, verification=verification)


def _recent_verification(
    *, scope: TenantScope, actor: User, data: SmtpInput, email_id: int | None
) -> Email | None:
    if email_id is None:
        return None
    return Email.objects.filter(
        pk=email_id,
        kind=EmailKind.VERIFY,
        status=EmailStatus.SENT,
        requested_by=actor,
        partner=scope.partner,
        organization=scope.organization,
        created_at__gte=timezone.now() - VERIFIED_WITHIN,
        server__iexact=f"{data.host.strip()}:{data.port}",
    ).first()


@transaction.atomic
def email_preview_send(*, scope: TenantScope, actor: User, kind: str) -> Email:
    """Send the preview of ``kind`` to ``actor`` through the configuration in
    effect (a test email: tried once, within the admin's test limits).

    Raises ``TestEmailRefused`` when no configuration is in effect or the
    admin is over the limits.
    """
    effective = smtp_config_effective(
        partner=scope.partner, organization=scope.organization
    )
    if effective.settings is None:
        raise TestEmailConflict(
            "No SMTP configuration is in effect: save one on the SMTP page, or "
            "set the controller defaults (FW_EVENT_SMTP_SERVER_*)."
        )
    User.objects.select_for_update().filter(pk=actor.pk).first()
    _check_test_rate(actor)
    rendered = email_preview_render(
        kind=kind,
        branding=email_branding(partner=scope.partner),
        user=actor,
        partner=scope.partner,
    )
    return email_enqueue(
        NewEmail(
            kind=EmailKind.TEST,
            recipient=actor.email,
            subject=rendered.subject,
            body=rendered.text,
            html_body=rendered.html,
            partner=scope.partner,
            organization=scope.organization,
            requested_by=actor,
            message_domain=message_domain(effective.settings.sender_email),
        )
    )


# -- system emails ---------------------------------------------------------------


@dataclass(frozen=True)
class SystemEmail:
    """A system email to send: rendered from ``templates/emails/<kind>.txt`` and
    ``.html`` with its partner's branding."""

    kind: EmailKind
    to: str
    context: dict[str, Any]
    organization: Organization | None = None
    partner: Partner | None = None


class _PerTenant:
    """What a batch of system emails needs once per tenant: the branding (the
    partner's) and the sender's domain (for Message-IDs)."""

    def __init__(self) -> None:
        self._setups: dict[tuple, SystemEmailSetup] = {}

    def setup(
        self, partner: Partner | None, organization: Organization | None
    ) -> SystemEmailSetup:
        key = (
            partner.pk if partner is not None else None,
            organization.pk if organization is not None else None,
        )
        if key not in self._setups:
            self._setups[key] = system_email_setup(
                partner=partner, organization=organization
            )
        return self._setups[key]


def _rendered(message: SystemEmail, tenant: _PerTenant) -> NewEmail:
    errors: dict[str, list[str]] = {}
    recipient = validate_address("to", "Recipient", message.to, errors, required=True)
    if errors:
        raise SmtpValidationError(errors)
    organization = message.organization
    partner = organization.partner if organization is not None else message.partner
    context = {**message.context, "organization": organization, "partner": partner}
    setup = tenant.setup(partner, organization)
    rendered = email_render(
        kind=message.kind,
        context=context,
        recipient=recipient,
        branding=setup.branding,
    )
    return NewEmail(
        kind=message.kind,
        recipient=recipient,
        subject=rendered.subject,
        body=rendered.text,
        html_body=rendered.html,
        partner=partner,
        organization=organization,
        message_domain=message_domain(setup.sender_email),
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
    tenant = _PerTenant()
    return emails_enqueue([_rendered(message, tenant) for message in messages])
