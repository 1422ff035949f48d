"""Reads about SMTP configurations.

``smtp_config_effective`` is the one place that knows the precedence:
organization (only when its SMTP feature is on) > partner > controller defaults
(``FW_EVENT_SMTP_SERVER_*``, read now) > none. Pages, APIs, tasks and the admin
all call it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import Count, JSONField, OuterRef, Q, QuerySet, Subquery
from django.urls import reverse
from django.utils import timezone

from core.env import controller_smtp
from core.prepared import PreparedQuery
from core.stamps import partner_stamp, stamped_copy
from smtp.delivery.certificates import CertificateInfo
from smtp.delivery.providers import basic_auth_retirement, uses_password
from smtp.delivery.server import ClientCertificate, OAuth2Client, Secret, SmtpServer
from smtp.enums import (
    AuthMethod,
    EmailStatus,
    Level,
    OAuth2Provider,
    Security,
    security_from_tls,
)
from smtp.identity import allowed_domains_text, domain_allowed, validate_display_name
from smtp.models import (
    Email,
    EmailAttempt,
    EmailTextOverride,
    PartnerEmailIdentity,
    SmtpConfiguration,
    SmtpDraft,
)
from smtp.validators import (
    controller_oauth2_problem,
    validate_address,
    validate_client_certificate,
    validate_host,
)
from tenants.models import Organization, Partner, User


@dataclass(frozen=True)
class Layer:
    """A level that was considered, whether it won, and why it did not."""

    level: Level
    settings: SmtpServer | None
    # Why a present configuration is not used, e.g. "feature off".
    skipped_because: str = ""

    @property
    def usable(self) -> bool:
        return self.settings is not None and not self.skipped_because


@dataclass(frozen=True)
class EffectiveSmtp:
    """The configuration in effect for a tenant, and every layer considered."""

    source: Level
    settings: SmtpServer | None
    layers: tuple[Layer, ...]
    # The identity fields the winner inherited, and the level each came from.
    inherited: tuple[tuple[str, Level], ...] = ()

    def layer(self, level: Level) -> Layer | None:
        return next((layer for layer in self.layers if layer.level == level), None)

    def inherited_from(self, name: str) -> Level | None:
        """The level ``name`` (an identity field) was inherited from, if it was."""
        return dict(self.inherited).get(name)


# The sender identity: inherited field by field from the levels below the one in
# effect (an organization's empty Reply-To is its partner's, else the
# controller's). The sender address itself is not: it belongs with the account.
IDENTITY_FIELDS = ("sender_name", "reply_to", "bounce_address")


def _with_inherited_identity(
    server: SmtpServer, below: list[Layer]
) -> tuple[SmtpServer, tuple[tuple[str, Level], ...]]:
    """``server`` with each empty identity field taken from the first usable level
    of ``below`` that sets it; and where each inherited one came from."""
    values: dict[str, str] = {}
    origins: list[tuple[str, Level]] = []
    for name in IDENTITY_FIELDS:
        if getattr(server, name):
            continue
        for layer in below:
            if layer.usable and getattr(layer.settings, name):
                values[name] = getattr(layer.settings, name)
                origins.append((name, layer.level))
                break
    if not values:
        return server, ()
    return replace(server, **values), tuple(origins)


def effective_sender(*, configured: str, username: str) -> tuple[str, str]:
    """The From address and where it comes from: configured, username or default."""
    if configured:
        return configured, "configured"
    if username:
        try:
            validate_email(username)
        except ValidationError:
            pass
        else:
            return username, "username"
    return settings.DEFAULT_FROM_EMAIL, "default"


# The encrypted columns: not loaded (never decrypted) when only the sender
# identity is asked for.
SECRET_COLUMNS = (*SmtpConfiguration.SECRET_FIELDS, "client_key")


def _secret(row: SmtpConfiguration | SmtpDraft, name: str) -> Secret:
    return Secret(None if name in row.get_deferred_fields() else getattr(row, name))


def _oauth2_of_row(row: SmtpConfiguration | SmtpDraft) -> OAuth2Client | None:
    if row.auth_method != AuthMethod.OAUTH2 or not row.oauth2_provider:
        return None
    return OAuth2Client(
        provider=OAuth2Provider(row.oauth2_provider),
        client_id=row.oauth2_client_id,
        client_secret=_secret(row, "oauth2_client_secret"),
        tenant_id=row.oauth2_tenant_id,
        scope=row.oauth2_scope,
        token_url=row.oauth2_token_url,
        service_account_key=_secret(row, "oauth2_service_account_key"),
    )


def _from_row(row: SmtpConfiguration | SmtpDraft) -> SmtpServer:
    sender, origin = effective_sender(
        configured=row.sender_email, username=row.username
    )
    return SmtpServer(
        auth_method=AuthMethod(row.auth_method),
        oauth2=_oauth2_of_row(row),
        level=row.level,
        host=row.host,
        port=row.port,
        security=Security(row.security),
        use_insecure=row.use_insecure,
        username=row.username,
        password=_secret(row, "password"),
        retries=row.retries,
        sender_email=sender,
        sender_origin=origin,
        trusted=False,
        configuration_id=row.pk if isinstance(row, SmtpConfiguration) else None,
        updated_at=getattr(row, "updated_at", None),
        updated_by=(
            row.updated_by.email if getattr(row, "updated_by_id", None) else None
        ),
        client_certificate=(
            ClientCertificate(cert=row.client_cert, key=_secret(row, "client_key"))
            if row.client_cert
            and ("client_key" in row.get_deferred_fields() or row.client_key)
            else None
        ),
        sender_name=row.sender_name,
        reply_to=row.reply_to,
        bounce_address=row.bounce_address,
        **_limits(row.messages_per_minute, row.max_connections),
        failover=getattr(row, "failover", False),
    )


def _limits(messages_per_minute: int | None, max_connections: int | None) -> dict:
    """A level's delivery limits; each one it leaves empty is the deployment's
    default (``SMTP_DEFAULT_MESSAGES_PER_MINUTE``, ``SMTP_DEFAULT_MAX_CONNECTIONS``)."""
    return {
        "messages_per_minute": (
            settings.SMTP_DEFAULT_MESSAGES_PER_MINUTE
            if messages_per_minute is None
            else messages_per_minute
        ),
        "max_connections": (
            settings.SMTP_DEFAULT_MAX_CONNECTIONS
            if max_connections is None
            else max_connections
        ),
    }


def smtp_limits_in_effect(row: SmtpConfiguration | SmtpDraft) -> dict[str, int]:
    """The delivery limits a stored row sends with (0: none), defaults applied."""
    return _limits(row.messages_per_minute, row.max_connections)


def _layers_below(row: SmtpConfiguration | SmtpDraft) -> list[Layer]:
    """The levels under a stored row's: the partner's (for an organization's),
    then the controller's."""
    layers: list[Layer] = []
    if row.organization_id is not None:
        partner_row = (
            SmtpConfiguration.objects.filter(
                partner_id=row.partner_id, organization__isnull=True
            )
            .select_related("updated_by")
            .first()
        )
        if partner_row is not None:
            layers.append(Layer(level=Level.PARTNER, settings=_from_row(partner_row)))
    layers.append(controller_smtp_layer())
    return layers


def _with_identity_below(row: SmtpConfiguration | SmtpDraft) -> SmtpServer:
    server = _from_row(row)
    if all(getattr(server, name) for name in IDENTITY_FIELDS):
        return server
    return _with_inherited_identity(server, _layers_below(row))[0]


def smtp_server_of_draft(draft: SmtpDraft) -> SmtpServer:
    """The settings a test of unsaved form values uses (the sender identity it
    leaves empty inherited from the levels below, as when saved)."""
    return _with_identity_below(draft)


def smtp_server_of_configuration(configuration: SmtpConfiguration) -> SmtpServer:
    """The settings of one stored configuration (the health check tries each),
    with the sender identity it inherits."""
    return _with_identity_below(configuration)


def controller_smtp_layer() -> Layer:
    """The controller defaults from ``FW_EVENT_SMTP_SERVER_*``, read now."""
    try:
        values = controller_smtp()
        if values is None:
            return Layer(level=Level.CONTROLLER, settings=None)
        host = validate_host(values.host)
    except ValueError as problem:
        message = str(problem).replace("Host", "FW_EVENT_SMTP_SERVER_ADDR", 1)
        return Layer(
            level=Level.CONTROLLER,
            settings=None,
            skipped_because=f"misconfigured: {message}",
        )
    security = security_from_tls(use_tls=values.use_tls, port=values.port)
    problem = controller_oauth2_problem(values, security=security)
    if problem:
        return Layer(
            level=Level.CONTROLLER,
            settings=None,
            skipped_because=f"misconfigured: {problem}",
        )
    oauth2 = None
    if values.auth_method == AuthMethod.OAUTH2:
        oauth2 = OAuth2Client(
            provider=OAuth2Provider(values.oauth2_provider),
            client_id=values.oauth2_client_id,
            client_secret=Secret(values.oauth2_client_secret),
            tenant_id=values.oauth2_tenant_id,
            scope=values.oauth2_scope,
            token_url=values.oauth2_token_url,
            service_account_key=Secret(values.oauth2_service_account_key),
        )
    client_certificate = None
    if values.client_cert or values.client_key:
        try:
            validate_client_certificate(values.client_cert, values.client_key)
        except ValueError as problem:
            message = (
                str(problem)
                .replace("Client certificate", "FW_EVENT_SMTP_SERVER_CLIENT_CERT", 1)
                .replace("Client key", "FW_EVENT_SMTP_SERVER_CLIENT_KEY", 1)
            )
            return Layer(
                level=Level.CONTROLLER,
                settings=None,
                skipped_because=f"misconfigured: {message}",
            )
        client_certificate = ClientCertificate(
            cert=values.client_cert, key=Secret(values.client_key)
        )
    identity_errors: dict[str, list[str]] = {}
    sender_name = validate_display_name(
        "FW_EVENT_SMTP_SERVER_SENDER_NAME",
        "FW_EVENT_SMTP_SERVER_SENDER_NAME",
        values.sender_name,
        identity_errors,
    )
    for variable, value in (
        ("FW_EVENT_SMTP_SERVER_REPLY_TO", values.reply_to),
        ("FW_EVENT_SMTP_SERVER_BOUNCE_ADDRESS", values.bounce_address),
    ):
        validate_address(variable, variable, value, identity_errors, required=False)
    if identity_errors:
        problems = " ".join(m for ms in identity_errors.values() for m in ms)
        return Layer(
            level=Level.CONTROLLER,
            settings=None,
            skipped_because=f"misconfigured: {problems}",
        )
    sender, origin = effective_sender(configured="", username=values.username)
    return Layer(
        level=Level.CONTROLLER,
        settings=SmtpServer(
            auth_method=AuthMethod(values.auth_method),
            oauth2=oauth2,
            level=Level.CONTROLLER,
            host=host,
            port=values.port,
            security=security,
            use_insecure=values.use_insecure,
            username=values.username,
            password=Secret(values.password),
            retries=3,
            sender_email=sender,
            sender_origin=origin,
            trusted=True,
            client_certificate=client_certificate,
            sender_name=sender_name,
            reply_to=values.reply_to,
            bounce_address=values.bounce_address,
            **_limits(values.messages_per_minute, values.max_connections),
        ),
    )


FEATURE_OFF = "the organization's SMTP configuration feature is off"


def smtp_config_in_use() -> Q:
    """Configurations that are, or may become, in effect without a change.

    Every partner's (it serves the organizations without their own), and an
    organization's while its SMTP feature is on; the precedence below skips the rest.
    """
    return Q(organization__isnull=True) | Q(
        organization__smtp_configuration_enabled=True
    )


def _rows_query(*, with_organization: bool, with_password: bool) -> PreparedQuery:
    """The query of ``_stored_rows`` for one shape, compiled once (it runs on
    every configuration read: pages, APIs, every email queued)."""

    def build(partner_id: int, organization_id: int | None = None) -> QuerySet:
        scope = Q(organization__isnull=True)
        if with_organization:
            scope |= Q(organization_id=organization_id)
        # The partner's allowed sender domains come along (no query of their own).
        allowed = Subquery(
            PartnerEmailIdentity.objects.filter(partner=OuterRef("partner")).values(
                "allowed_sender_domains"
            )[:1],
            output_field=JSONField(),
        )
        rows = SmtpConfiguration.objects.filter(scope, partner_id=partner_id)
        if not with_password:
            rows = rows.defer(*SECRET_COLUMNS)
        return rows.select_related("updated_by").annotate(
            allowed_sender_domains=allowed
        )

    # Keys by equality: one plan serves every tenant.
    return PreparedQuery(
        build, kinds=(int, int) if with_organization else (int,), in_server=True
    )


_ROWS = {
    (with_organization, with_password): _rows_query(
        with_organization=with_organization, with_password=with_password
    )
    for with_organization in (False, True)
    for with_password in (False, True)
}


def _stored_rows(
    *, partner: Partner, organization: Organization | None, with_password: bool = True
) -> dict[Level, SmtpConfiguration]:
    """The organization's (if asked) and the partner's rows by level, in one query."""
    if organization is not None and organization.partner_id != partner.pk:
        raise ValueError("The organization does not belong to this partner.")
    query = _ROWS[(organization is not None, with_password)]
    arguments = (partner.pk,) if organization is None else (partner.pk, organization.pk)
    return {row.level: row for row in query.run(*arguments)}


def _stored_layers(
    *, by_level: dict[Level, SmtpConfiguration], organization: Organization | None
) -> list[Layer]:
    """The organization's (if asked) and the partner's layers."""
    layers: list[Layer] = []
    if organization is not None:
        org_row = by_level.get(Level.ORGANIZATION)
        skipped = ""
        if org_row is not None and not organization.smtp_configuration_enabled:
            skipped = FEATURE_OFF
        elif org_row is not None:
            skipped = _outside_allowed_domains(
                org_row, allowed=tuple(org_row.allowed_sender_domains or ())
            )
        layers.append(
            Layer(
                level=Level.ORGANIZATION,
                settings=_from_row(org_row) if org_row else None,
                skipped_because=skipped,
            )
        )
    partner_row = by_level.get(Level.PARTNER)
    layers.append(
        Layer(
            level=Level.PARTNER,
            settings=_from_row(partner_row) if partner_row else None,
        )
    )
    return layers


def sender_domains_allowed(*, partner: Partner | None) -> tuple[str, ...]:
    """The partner's allowed sender domains (empty: any domain)."""
    if partner is None:
        return ()
    domains = (
        PartnerEmailIdentity.objects.filter(partner=partner)
        .values_list("allowed_sender_domains", flat=True)
        .first()
    )
    return tuple(domains or ())


def _outside_allowed_domains(
    row: SmtpConfiguration, *, allowed: tuple[str, ...]
) -> str:
    """Why an organization's configuration may not send for its partner: an
    address outside the partner's allowed sender domains (set after it was
    saved); "" when it may."""
    if not allowed:
        return ""
    sender, origin = effective_sender(
        configured=row.sender_email, username=row.username
    )
    if origin == "default":
        sender = ""  # the console's own address, not the organization's choice
    for label, address in (
        ("sender", sender),
        ("Reply-To", row.reply_to),
        ("bounce address", row.bounce_address),
    ):
        if address and not domain_allowed(address, allowed):
            return (
                f"its {label} {address} is outside the partner's allowed sender "
                f"domains ({allowed_domains_text(allowed)})"
            )
    return ""


def smtp_config_effective(
    *,
    partner: Partner | None,
    organization: Organization | None = None,
    with_password: bool = True,
) -> EffectiveSmtp:
    """Which SMTP configuration is in effect for a partner or one of its organizations.

    One query for the partner's and the organization's rows; the controller
    defaults are read from the environment now. Without a partner (support
    staff), only the controller level applies. ``with_password=False`` leaves the
    stored secrets (password, OAuth2 secret and key, client key) unread: the
    sender identity is all that is needed then, and an undecryptable secret fails
    the email when it is sent, not its queueing.
    """
    by_level = (
        _stored_rows(
            partner=partner, organization=organization, with_password=with_password
        )
        if partner is not None
        else None
    )
    return _effective(by_level, organization=organization)


def smtp_config_get_and_effective(
    *, partner: Partner, organization: Organization | None = None
) -> tuple[SmtpConfiguration | None, EffectiveSmtp]:
    """The configuration stored at exactly this level (``smtp_config_get``) and
    the one in effect (``smtp_config_effective``), from the same one query."""
    by_level = _stored_rows(partner=partner, organization=organization)
    own = by_level.get(Level.ORGANIZATION if organization else Level.PARTNER)
    return own, _effective(by_level, organization=organization)


def _effective(
    by_level: dict[Level, SmtpConfiguration] | None,
    *,
    organization: Organization | None,
) -> EffectiveSmtp:
    layers: list[Layer] = []
    if by_level is not None:
        layers = _stored_layers(by_level=by_level, organization=organization)
    layers.append(controller_smtp_layer())
    index = next((i for i, layer in enumerate(layers) if layer.usable), None)
    if index is None:
        return EffectiveSmtp(source=Level.NONE, settings=None, layers=tuple(layers))
    winner = layers[index]
    settings_, inherited = _with_inherited_identity(
        winner.settings, layers[index + 1 :]
    )
    return EffectiveSmtp(
        source=winner.level,
        settings=settings_,
        layers=tuple(layers),
        inherited=inherited,
    )


def smtp_failover_route(effective: EffectiveSmtp) -> tuple[SmtpServer, ...]:
    """The configurations an email is sent with, in order: the one in effect,
    then, while the last one has ``failover`` on, the next usable level's (each
    with the sender identity it inherits from the levels below it)."""
    if effective.settings is None:
        return ()
    route = [effective.settings]
    index = next(
        i for i, ly in enumerate(effective.layers) if ly.level == effective.source
    )
    while route[-1].failover:
        index = next(
            (
                i
                for i in range(index + 1, len(effective.layers))
                if effective.layers[i].usable
            ),
            None,
        )
        if index is None:
            break
        server, _ = _with_inherited_identity(
            effective.layers[index].settings, list(effective.layers[index + 1 :])
        )
        route.append(server)
    return tuple(route)


def smtp_delivery_route(
    *, partner: Partner | None, organization: Organization | None
) -> tuple[SmtpServer, ...]:
    """The configurations a system email of this tenant is sent with, in order
    (``smtp_failover_route``); empty when none is in effect."""
    return smtp_failover_route(
        smtp_config_effective(partner=partner, organization=organization)
    )


def smtp_failover_target(effective: EffectiveSmtp, level: Level) -> Level | None:
    """The level a configuration at ``level`` would fail over to now: the next
    usable one below it; ``None`` if there is none."""
    levels = [layer.level for layer in effective.layers]
    if level not in levels:
        return None
    below = effective.layers[levels.index(level) + 1 :]
    return next((layer.level for layer in below if layer.usable), None)


def smtp_config_is_own(*, effective: EffectiveSmtp, level: str) -> bool:
    """Whether the configuration in effect is the caller's level's own."""
    return effective.source.value == level


def smtp_test_recipient_allowed(
    *, partner: Partner, organization: Organization | None, address: str
) -> bool:
    """Whether ``address`` is an active user of the tenant.

    A partner's tenant is the partner's users and those of its organizations:
    it creates those organizations and their users, and system emails reach them
    through the same configurations.
    """
    if organization is not None:
        users = User.objects.filter(organization=organization)
    else:
        users = User.objects.filter(
            Q(partner=partner) | Q(organization__partner=partner)
        )
    return users.filter(is_active=True, email__iexact=address).exists()


def smtp_config_get(
    *, partner: Partner, organization: Organization | None = None
) -> SmtpConfiguration | None:
    """The configuration stored at exactly this level (not inherited), if any."""
    return (
        SmtpConfiguration.objects.select_related("updated_by")
        .filter(own_level(partner=partner, organization=organization))
        .first()
    )


def own_level(*, partner: Partner, organization: Organization | None) -> Q:
    """The row of exactly this level: the organization's, or the partner's own."""
    if organization is not None:
        return Q(organization=organization)
    return Q(partner=partner, organization__isnull=True)


def email_get(*, scope, email_id: int):
    """An email of the caller's tenant (a partner sees its organizations' too)."""
    emails = Email.objects.filter(partner=scope.partner)
    if scope.organization is not None:
        emails = emails.filter(organization=scope.organization)
    return emails.filter(pk=email_id).first()


def email_wait_final(*, email, seconds: float, interval: float = 0.1):
    """The email, re-read until it is sent or failed, for at most ``seconds``."""
    deadline = time.monotonic() + seconds
    polled = False
    while not email.is_final and time.monotonic() < deadline:
        time.sleep(interval)
        email.refresh_from_db(fields=["status"])
        polled = True
    if polled:
        email.refresh_from_db()
    return email


def email_attempts(*, email) -> list:
    """Every attempt to send ``email``, first to last."""
    return list(EmailAttempt.objects.filter(email=email).order_by("number"))


def email_counters(*, now=None) -> dict:
    """Emails sent and failed per configuration level, last 24 hours and 7 days;
    and, last 7 days, those delayed by a limit (put back without using a retry)
    and those that failed over to this level."""
    now = now or timezone.now()
    windows = {"24h": timedelta(hours=24), "7d": timedelta(days=7)}
    rows: dict[str, dict] = {}
    aggregates = {}
    for name, span in windows.items():
        since = Q(created_at__gte=now - span)
        aggregates[f"sent_{name}"] = Count(
            "id", filter=since & Q(status=EmailStatus.SENT)
        )
        aggregates[f"failed_{name}"] = Count(
            "id", filter=since & Q(status=EmailStatus.FAILED)
        )
    aggregates["waiting"] = Count(
        "id", filter=Q(status__in=[EmailStatus.QUEUED, EmailStatus.SENDING])
    )
    week = Q(created_at__gte=now - windows["7d"])
    aggregates["delayed"] = Count("id", filter=week & Q(deferrals__gt=0))
    aggregates["failed_over"] = Count("id", filter=week & ~Q(fallback_from=""))
    recent = Email.objects.filter(
        Q(created_at__gte=now - windows["7d"])
        | Q(status__in=[EmailStatus.QUEUED, EmailStatus.SENDING])
    )
    for entry in (
        recent.values("level_used").annotate(**aggregates).order_by("level_used")
    ):
        level = (
            Level(entry["level_used"]).label if entry["level_used"] else "Not tried yet"
        )
        rows[level] = {
            "level": level,
            "cells": [
                {"sent": entry[f"sent_{name}"], "failed": entry[f"failed_{name}"]}
                for name in windows
            ],
            "waiting": entry["waiting"],
            "delayed": entry["delayed"],
            "failed_over": entry["failed_over"],
        }
    return {"windows": list(windows), "rows": list(rows.values())}


def email_last_steps(*, email) -> list:
    """The steps of an email's last attempt (sent system emails keep them there)."""
    if email.attempts == 0:
        return []
    last = EmailAttempt.objects.filter(email=email).order_by("-number").first()
    return last.steps if last else []


# -- notices -------------------------------------------------------------------------

BASIC_AUTH_RETIREMENT = "basic_auth_retirement"
CLIENT_CERTIFICATE_EXPIRING = "client_certificate_expiring"


@dataclass(frozen=True)
class Notice:
    """A standing notice about a configuration: a stable code and what to do."""

    code: str
    level: Level
    message: str


def _retirement_notice(
    config: SmtpConfiguration | SmtpServer, *, level: Level, own: bool
) -> Notice | None:
    retirement = basic_auth_retirement(config.host)
    if retirement is None or not uses_password(config):
        return None
    whose = "This configuration" if own else f"The {level.label.lower()} settings"
    return Notice(
        code=BASIC_AUTH_RETIREMENT,
        level=level,
        message=f"{whose} log in to {retirement.provider} ({config.host}) with a "
        "password. " + retirement.message,
    )


def _expiry_notice(certificate: CertificateInfo, *, level: Level) -> Notice:
    date = f"{certificate.not_after:%Y-%m-%d %H:%M} UTC"
    if certificate.expired():
        when = f"expired on {date}: servers that require it refuse the connection"
    else:
        days = certificate.days_left()
        when = f"expires on {date} (in {days} day{'s' if days != 1 else ''})"
    return Notice(
        code=CLIENT_CERTIFICATE_EXPIRING,
        level=level,
        message=f"The client certificate ({certificate.subject}) {when}. Upload the "
        "renewed certificate and its key.",
    )


def smtp_config_notices(
    *, effective: EffectiveSmtp, configuration: SmtpConfiguration | None
) -> list[Notice]:
    """Standing notices for the page and the API: the configuration at this level,
    and the inherited settings in effect when they come from another level."""
    notices: list[Notice] = []
    if configuration is not None:
        notice = _retirement_notice(configuration, level=configuration.level, own=True)
        if notice:
            notices.append(notice)
        certificate = configuration.client_certificate
        if certificate is not None and certificate.expires_soon():
            notices.append(_expiry_notice(certificate, level=configuration.level))
    server = effective.settings
    inherited = server is not None and (
        configuration is None or effective.source != configuration.level
    )
    if inherited:
        notice = _retirement_notice(server, level=server.level, own=False)
        if notice:
            notices.append(notice)
    return notices


# -- branding ------------------------------------------------------------------------

DEFAULT_PRODUCT_NAME = "Ops Console"
DEFAULT_PRIMARY_COLOR = "#1d4ed8"


@dataclass(frozen=True)
class EmailBranding:
    """How system emails look for a partner and its organizations (they inherit
    it): the console's defaults where the partner set nothing."""

    product_name: str = DEFAULT_PRODUCT_NAME
    primary_color: str = DEFAULT_PRIMARY_COLOR
    footer: str = ""
    support_email: str = ""
    logo_url: str = ""
    # (kind, subject, intro) the partner overrides; empty strings: the default.
    texts: tuple[tuple[str, str, str], ...] = ()

    def text_for(self, kind: str) -> tuple[str, str]:
        """The partner's (subject, intro) for ``kind``; "" where not overridden."""
        for text_kind, subject, intro in self.texts:
            if text_kind == kind:
                return subject, intro
        return "", ""


def email_logo_url(*, partner_id: int, digest: str) -> str:
    """The public address of a partner's logo: by digest, so a new logo is a new
    address, and it carries nothing about the recipient."""
    path = reverse("email-logo", args=[partner_id, digest])
    return f"{settings.PUBLIC_URL}{path}"


def email_branding(*, partner: Partner | None) -> EmailBranding:
    """The branding of a partner's system emails (organizations use their
    partner's); the console's own without a partner. Two queries, no logo bytes."""
    if partner is None:
        return EmailBranding()
    identity = (
        PartnerEmailIdentity.objects.filter(partner=partner).defer("logo").first()
    )
    texts = tuple(
        EmailTextOverride.objects.filter(partner=partner)
        .order_by("kind")
        .values_list("kind", "subject", "intro")
    )
    if identity is None:
        return EmailBranding(texts=texts)
    return EmailBranding(
        product_name=identity.product_name or DEFAULT_PRODUCT_NAME,
        primary_color=identity.primary_color or DEFAULT_PRIMARY_COLOR,
        footer=identity.footer,
        support_email=identity.support_email,
        logo_url=(
            email_logo_url(partner_id=partner.pk, digest=identity.logo_digest)
            if identity.logo_digest
            else ""
        ),
        texts=texts,
    )


@dataclass(frozen=True)
class SystemEmailSetup:
    """What rendering a tenant's system emails needs: its branding and the sender
    address in effect (whose domain its Message-IDs carry)."""

    branding: EmailBranding
    sender_email: str


def system_email_setup(
    *, partner: Partner | None, organization: Organization | None = None
) -> SystemEmailSetup:
    """The branding and the sender in effect for a tenant's system emails.

    Each process keeps a copy per tenant while the partner's stamp is unchanged
    (``core.stamps``; the services that change a partner's or its organizations'
    settings renew it): queueing an email then reads no configuration at all.
    """

    def read() -> SystemEmailSetup:
        effective = smtp_config_effective(
            partner=partner, organization=organization, with_password=False
        )
        return SystemEmailSetup(
            branding=email_branding(partner=partner),
            sender_email=effective.settings.sender_email if effective.settings else "",
        )

    if partner is None:
        return read()  # the controller's: no query
    key = ("system-email-setup", partner.pk, organization.pk if organization else None)
    return stamped_copy(partner_stamp(partner.pk), key, read)


def email_identity_get(*, partner: Partner) -> PartnerEmailIdentity | None:
    """The partner's stored email identity (without the logo's bytes), if any."""
    return PartnerEmailIdentity.objects.filter(partner=partner).defer("logo").first()


def email_logo_get(*, partner_id: int, digest: str) -> tuple[bytes, str] | None:
    """A partner's logo bytes and type, if ``digest`` is its current logo's."""
    row = (
        PartnerEmailIdentity.objects.filter(partner_id=partner_id, logo_digest=digest)
        .exclude(logo_digest="")
        .values_list("logo", "logo_type")
        .first()
    )
    if row is None or row[0] is None:
        return None
    return bytes(row[0]), row[1]
