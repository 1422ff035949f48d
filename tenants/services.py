"""Writes about tenants: feature flags (audited) and console users."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.text import slugify

from audit.models import Category
from audit.services import actor_label, audit_event_record
from opsconsole.env import account_creation_strategy
from smtp.models import EmailKind
from smtp.services import send_system_email
from tenants.models import Organization, Partner, Role, User


@transaction.atomic
def organization_smtp_feature_set(
    *, organization: Organization, enabled: bool, actor: User | None
) -> bool:
    """Switch an organization's SMTP configuration feature; audited. True if changed."""
    locked = Organization.objects.select_for_update().get(pk=organization.pk)
    if locked.smtp_configuration_enabled == enabled:
        organization.smtp_configuration_enabled = enabled
        return False
    locked.smtp_configuration_enabled = enabled
    locked.save(update_fields=["smtp_configuration_enabled"])
    organization.smtp_configuration_enabled = enabled
    state = "enabled" if enabled else "disabled"
    audit_event_record(
        category=Category.AUDIT,
        type=f"feature.smtp_configuration.{state}",
        summary=f"SMTP configuration feature {state} for {organization.name}",
        actor=actor_label(actor),
        partner_id=organization.partner_id,
        organization_id=organization.pk,
        detail={"feature": "smtp_configuration", "enabled": enabled},
    )
    return True


# -- organizations and their first admin ---------------------------------------


class AccountStrategy:
    AUTO = "AUTO"
    VERIFY = "VERIFY"


def account_strategy() -> str:
    """``ACCOUNT_CREATION_STRATEGY`` now: AUTO (password at creation) or VERIFY."""
    strategy = account_creation_strategy()
    if strategy not in (AccountStrategy.AUTO, AccountStrategy.VERIFY):
        raise ImproperlyConfigured(
            f"ACCOUNT_CREATION_STRATEGY must be AUTO or VERIFY, not {strategy!r}."
        )
    return strategy


def one_time_link(*, user: User, route: str) -> str:
    """An absolute, one-time, expiring link for ``user`` (password setup or reset)."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return settings.PUBLIC_URL + reverse(route, args=[uid, token])


def link_context(user: User, route: str) -> dict:
    return {
        "user": user,
        "link": one_time_link(user=user, route=route),
        "expiry_days": max(1, settings.PASSWORD_RESET_TIMEOUT // 86400),
    }


@dataclass(frozen=True)
class OrganizationCreated:
    organization: Organization
    admin: User
    invitation_sent: bool


@transaction.atomic
def organization_create(
    *,
    partner: Partner,
    name: str,
    slug: str,
    admin_email: str,
    admin_password: str | None,
    actor: User | None,
) -> OrganizationCreated:
    """Create an organization and its first admin, as ACCOUNT_CREATION_STRATEGY says.

    AUTO: the password is required now. VERIFY: no password; the admin gets an
    email with a one-time link to set it. Raises ``ValidationError`` by field.
    """
    strategy = account_strategy()
    errors: dict[str, list[str]] = {}
    name = (name or "").strip()
    slug = slugify(slug or name)
    admin_email = (admin_email or "").strip().lower()
    if not name:
        errors["name"] = ["Name is required: enter the organization's name."]
    if not slug:
        errors["slug"] = [
            "Identifier is required: use letters, digits and hyphens, e.g. acme-prod."
        ]
    elif Organization.objects.filter(slug=slug).exists():
        errors["slug"] = [f"The identifier {slug} is taken: choose another one."]
    try:
        validate_email(admin_email)
    except ValidationError:
        errors["admin_email"] = [
            "Admin email must be an email address, e.g. admin@example.com."
        ]
    else:
        if User.objects.filter(email__iexact=admin_email).exists():
            errors["admin_email"] = [
                "A user with this email already exists: use another address."
            ]
    if not admin_email.isprintable():
        # Control characters: validate_email takes some in a quoted local part,
        # and the address goes into SMTP commands and headers of account emails.
        errors["admin_email"] = [
            "Admin email must not contain control characters (such as ESC, tab or "
            "DEL): retype it without them."
        ]
    admin = User(email=admin_email, role=Role.ADMIN)
    if strategy == AccountStrategy.AUTO:
        if not admin_password:
            errors["admin_password"] = [
                "Password is required (ACCOUNT_CREATION_STRATEGY is AUTO): enter the "
                "admin's first password."
            ]
        else:
            try:
                validate_password(admin_password, user=admin)
            except ValidationError as problem:
                errors["admin_password"] = list(problem.messages)
    elif admin_password:
        errors["admin_password"] = [
            "Leave Password empty: with ACCOUNT_CREATION_STRATEGY=VERIFY the admin "
            "sets it from the email sent to them."
        ]
    if errors:
        raise ValidationError(errors)
    organization = Organization.objects.create(partner=partner, slug=slug, name=name)
    admin.organization = organization
    if strategy == AccountStrategy.AUTO:
        admin.set_password(admin_password)
    else:
        admin.set_unusable_password()
    admin.save()
    audit_event_record(
        category=Category.AUDIT,
        type="organization.created",
        summary=f"Organization {name} created with admin {admin_email}",
        actor=actor_label(actor),
        partner_id=partner.pk,
        organization_id=organization.pk,
        detail={
            "organization": slug,
            "admin": admin_email,
            "account_creation_strategy": strategy,
        },
    )
    if strategy == AccountStrategy.VERIFY:
        send_system_email(
            kind=EmailKind.PASSWORD_SETUP,
            to=admin_email,
            organization=organization,
            context=link_context(admin, "account-setup"),
        )
    return OrganizationCreated(
        organization=organization,
        admin=admin,
        invitation_sent=strategy == AccountStrategy.VERIFY,
    )


def password_reset_request(*, email: str) -> int:
    """Send a reset link to the active user with this email, if any (no hint if not)."""
    users = [
        user
        for user in User.objects.select_related(
            "organization__partner", "partner"
        ).filter(email__iexact=(email or "").strip(), is_active=True)
        if user.has_usable_password()
    ]
    for user in users:
        send_system_email(
            kind=EmailKind.PASSWORD_RESET,
            to=user.email,
            organization=user.organization,
            partner=user.partner,
            context=link_context(user, "password-reset-confirm"),
        )
    return len(users)
