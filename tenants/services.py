"""Writes about tenants: organizations, feature flags, users.

Organization changes and flag switches are audited. Nothing here sends email:
the flows that also mail someone or touch SMTP configurations (account emails,
password resets, moving an organization with its configuration) are in
``accounts``, above this app and ``smtp``.
"""

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
from core.addresses import AddressError, check_address
from core.env import account_creation_strategy
from core.stamps import partner_stamp, stamp_renew_on_commit
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
    # The organization's own SMTP configuration is in effect, or no longer.
    stamp_renew_on_commit(partner_stamp(organization.partner_id))
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


# -- organization changes in the admin -------------------------------------------

# The fields of an organization besides its feature flags, as the audit log names
# them; a partner is recorded by its slug.
ORGANIZATION_FIELDS = ("name", "slug", "partner")


def _shown(field: str, value) -> str:
    return value.slug if field == "partner" else value


@transaction.atomic
def organization_add(*, organization: Organization, actor: User | None) -> Organization:
    """Save a new organization (no users; the flag starts off, then is set); audited."""
    enabled = organization.smtp_configuration_enabled
    organization.smtp_configuration_enabled = False
    organization.full_clean()
    organization.save()
    audit_event_record(
        category=Category.AUDIT,
        type="organization.created",
        summary=f"Organization {organization.name} created",
        actor=actor_label(actor),
        partner_id=organization.partner_id,
        organization_id=organization.pk,
        detail={
            "organization": organization.slug,
            "name": organization.name,
            "partner": organization.partner.slug,
        },
    )
    if enabled:
        organization_smtp_feature_set(
            organization=organization, enabled=True, actor=actor
        )
    return organization


@transaction.atomic
def organization_update(
    *,
    organization: Organization,
    actor: User | None,
    name: str | None = None,
    slug: str | None = None,
    partner: Partner | None = None,
    smtp_configuration_enabled: bool | None = None,
) -> list[str]:
    """Change an organization (``None``: keep); audited. The changed fields' names.

    The event has every changed field's old and new value. It is recorded under
    the partner the organization had, and a move to another partner is recorded
    under the new partner too: each partner's log keeps only what happened
    while the organization was theirs. Raises ``ValidationError`` by field.
    Moving the organization's own SMTP configuration with it is not done here:
    ``accounts.services.organization_update`` does both.
    """
    locked = (
        Organization.objects.select_for_update()
        .select_related("partner")
        .get(pk=organization.pk)
    )
    old_partner = locked.partner
    wanted = {"name": name, "slug": slug, "partner": partner}
    changes: dict[str, dict[str, str]] = {}
    for field in ORGANIZATION_FIELDS:
        old, new = getattr(locked, field), wanted[field]
        if new is not None and new != old:
            changes[field] = {"old": _shown(field, old), "new": _shown(field, new)}
            setattr(locked, field, new)
    if changes:
        locked.full_clean(exclude=["smtp_configuration_enabled"])
        locked.save(update_fields=list(changes))
        summary = f"Organization {changes.get('name', {}).get('old', locked.name)}"
        if "partner" in changes:
            summary += f" moved from {old_partner.name} to {locked.partner.name}"
            rest = [field for field in changes if field != "partner"]
            if rest:
                summary += f"; changed {', '.join(rest)}"
        else:
            summary += f" changed: {', '.join(changes)}"
        partners = [old_partner.pk]
        if locked.partner_id != old_partner.pk:
            partners.append(locked.partner_id)
        for partner_id in partners:
            audit_event_record(
                category=Category.AUDIT,
                type="organization.updated",
                summary=summary,
                actor=actor_label(actor),
                partner_id=partner_id,
                organization_id=locked.pk,
                detail={"organization": locked.slug, "changes": changes},
            )
    for field in ORGANIZATION_FIELDS:
        setattr(organization, field, getattr(locked, field))
    changed = list(changes)
    if smtp_configuration_enabled is not None and organization_smtp_feature_set(
        organization=organization, enabled=smtp_configuration_enabled, actor=actor
    ):
        changed.append("smtp_configuration_enabled")
    return changed


@transaction.atomic
def organization_delete(*, organization: Organization, actor: User | None) -> None:
    """Delete an organization that nothing refers to; audited under its partner."""
    audit_event_record(
        category=Category.AUDIT,
        type="organization.deleted",
        summary=f"Organization {organization.name} deleted",
        actor=actor_label(actor),
        partner_id=organization.partner_id,
        # Not the organization itself: the event outlives it.
        organization_id=None,
        detail={"organization": organization.slug, "name": organization.name},
    )
    organization.delete()


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


@dataclass(frozen=True)
class OrganizationCreated:
    organization: Organization
    admin: User
    # VERIFY: the admin has no password until they follow a one-time link.
    password_pending: bool


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

    AUTO: the password is required now. VERIFY: no password; the admin is to get
    an email with a one-time link to set it, which is not sent here:
    ``accounts.services.organization_create`` does both. Raises
    ``ValidationError`` by field.
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
        # The domain as SMTP will carry it (IDNA): account emails go there.
        check_address(admin_email)
    except ValidationError:
        errors["admin_email"] = [
            "Admin email must be an email address, e.g. admin@example.com."
        ]
    except AddressError as problem:
        errors["admin_email"] = [f"Admin email: {problem}"]
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
                "Password is required: new admins get their first password here "
                "(no email is sent); enter it and pass it on to them."
            ]
        else:
            try:
                validate_password(admin_password, user=admin)
            except ValidationError as problem:
                errors["admin_password"] = list(problem.messages)
    elif admin_password:
        errors["admin_password"] = [
            "Leave Password empty: the admin sets their own password from the "
            "one-time link emailed to them."
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
    return OrganizationCreated(
        organization=organization,
        admin=admin,
        password_pending=strategy == AccountStrategy.VERIFY,
    )
