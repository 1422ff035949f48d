"""Account flows that span tenants and smtp: the emails they send, the moves.

``tenants`` keeps the accounts, their rules and their audit events; ``smtp``
sends email and owns the SMTP configurations. The flows that need both (an
organization created with an emailed password link, password resets, moving an
organization with its own SMTP configuration) live here, above the two, so that
``tenants`` never imports ``smtp``.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import transaction

from core.publish import publish
from smtp.enums import EmailKind
from smtp.models import SmtpConfiguration
from smtp.services import send_system_email
from tenants import services as tenants_services
from tenants.models import Organization, Partner, User, email_key
from tenants.ratelimit import rate_limit_hit, rate_limit_key, rate_limit_prune
from tenants.services import OrganizationCreated, one_time_link


def link_context(user: User, route: str) -> dict:
    """The context of an email carrying a one-time link for ``user``."""
    return {
        "user": user,
        "link": one_time_link(user=user, route=route),
        "expiry_days": max(1, settings.PASSWORD_RESET_TIMEOUT // 86400),
    }


# -- organizations ---------------------------------------------------------------


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
    created = tenants_services.organization_create(
        partner=partner,
        name=name,
        slug=slug,
        admin_email=admin_email,
        admin_password=admin_password,
        actor=actor,
    )
    if created.password_pending:
        send_system_email(
            kind=EmailKind.PASSWORD_SETUP,
            to=created.admin.email,
            organization=created.organization,
            context=link_context(created.admin, "account-setup"),
        )
    return created


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

    As ``tenants.services.organization_update``; a move to another partner takes
    the organization's own SMTP configuration along. Raises ``ValidationError``
    by field.
    """
    changed = tenants_services.organization_update(
        organization=organization,
        actor=actor,
        name=name,
        slug=slug,
        partner=partner,
        smtp_configuration_enabled=smtp_configuration_enabled,
    )
    if "partner" in changed:
        # The organization's own SMTP configuration belongs to its partner too:
        # what is recorded about it from now on (health checks) goes to the new
        # partner's log, not to the old one's.
        SmtpConfiguration.objects.filter(organization=organization).update(
            partner=organization.partner
        )
    return changed


# -- password resets -------------------------------------------------------------

# The Celery name of ``accounts.tasks.password_reset_send_task``. A wire name:
# messages already queued under it must still run, so it keeps the app it was
# first registered in.
RESET_LINK_TASK = "tenants.password_reset_send"
PASSWORD_RESET_SCOPES = ("password-reset:client", "password-reset:address")


def password_reset_window() -> timedelta:
    return timedelta(minutes=settings.PASSWORD_RESET_LIMIT_MINUTES)


def password_reset_request(*, email: str, client: str) -> bool:
    """Count a reset request and hand it to the worker, within the limits.

    The same work whether or not an account uses the address: the lookup and the
    email happen in the worker (``password_reset_send``), so neither the answer
    nor its timing tells. ``client`` is the requester's IP address. False, and
    nothing queued, when the client or the address is over its limit.
    """
    address = email_key(email)
    window = password_reset_window()
    client_scope, address_scope = PASSWORD_RESET_SCOPES
    if not rate_limit_hit(
        key=rate_limit_key(scope=client_scope, value=client),
        limit=settings.PASSWORD_RESET_LIMIT_PER_CLIENT,
        window=window,
    ) or not rate_limit_hit(
        key=rate_limit_key(scope=address_scope, value=address),
        limit=settings.PASSWORD_RESET_LIMIT_PER_ADDRESS,
        window=window,
    ):
        return False
    transaction.on_commit(partial(_password_reset_publish, address))
    return True


def _password_reset_publish(address: str) -> None:
    # On a broker outage the person sees the usual answer and can ask again; the
    # address is not logged.
    publish(RESET_LINK_TASK, kwargs={"email": address})


def password_reset_send(*, email: str) -> int:
    """Queue a reset link for the active user with this email, if any: how many.

    The worker's half of ``password_reset_request``; it also prunes the request
    counters whose window is over.
    """
    users = [
        user
        for user in User.objects.select_related(
            "organization__partner", "partner"
        ).filter(email__iexact=email_key(email), is_active=True)
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
    for scope in PASSWORD_RESET_SCOPES:
        rate_limit_prune(scope=scope, window=password_reset_window())
    return len(users)
