"""Reads about SMTP configurations.

``smtp_config_effective`` is the one place that knows the precedence:
organization (only when its SMTP feature is on) > partner > controller defaults
(``FW_EVENT_SMTP_SERVER_*``, read now) > none. Pages, APIs, tasks and the admin
all call it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import Count, Q
from django.utils import timezone

from core.env import controller_smtp
from smtp.delivery.server import Secret, SmtpServer
from smtp.enums import EmailStatus, Level, Security, security_from_tls
from smtp.models import Email, EmailAttempt, SmtpConfiguration, SmtpDraft
from smtp.validators import validate_host
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

    def layer(self, level: Level) -> Layer | None:
        return next((layer for layer in self.layers if layer.level == level), None)


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


def _from_row(row: SmtpConfiguration | SmtpDraft) -> SmtpServer:
    sender, origin = effective_sender(
        configured=row.sender_email, username=row.username
    )
    return SmtpServer(
        level=row.level,
        host=row.host,
        port=row.port,
        security=Security(row.security),
        use_insecure=row.use_insecure,
        username=row.username,
        password=Secret(row.password),
        retries=row.retries,
        sender_email=sender,
        sender_origin=origin,
        trusted=False,
        configuration_id=row.pk if isinstance(row, SmtpConfiguration) else None,
        updated_at=getattr(row, "updated_at", None),
        updated_by=(
            row.updated_by.email if getattr(row, "updated_by_id", None) else None
        ),
    )


def smtp_server_of_draft(draft: SmtpDraft) -> SmtpServer:
    """The settings a test of unsaved form values uses."""
    return _from_row(draft)


def smtp_server_of_configuration(configuration: SmtpConfiguration) -> SmtpServer:
    """The settings of one stored configuration (the health check tries each)."""
    return _from_row(configuration)


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
    sender, origin = effective_sender(configured="", username=values.username)
    return Layer(
        level=Level.CONTROLLER,
        settings=SmtpServer(
            level=Level.CONTROLLER,
            host=host,
            port=values.port,
            security=security_from_tls(use_tls=values.use_tls, port=values.port),
            use_insecure=values.use_insecure,
            username=values.username,
            password=Secret(values.password),
            retries=3,
            sender_email=sender,
            sender_origin=origin,
            trusted=True,
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


def _stored_rows(
    *, partner: Partner, organization: Organization | None
) -> dict[Level, SmtpConfiguration]:
    """The organization's (if asked) and the partner's rows by level, in one query."""
    if organization is not None and organization.partner_id != partner.pk:
        raise ValueError("The organization does not belong to this partner.")
    scope = Q(organization__isnull=True)
    if organization is not None:
        scope |= Q(organization=organization)
    rows = SmtpConfiguration.objects.filter(scope, partner=partner).select_related(
        "updated_by"
    )
    return {row.level: row for row in rows}


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


def smtp_config_effective(
    *, partner: Partner | None, organization: Organization | None = None
) -> EffectiveSmtp:
    """Which SMTP configuration is in effect for a partner or one of its organizations.

    One query for the partner's and the organization's rows; the controller
    defaults are read from the environment now. Without a partner (support
    staff), only the controller level applies.
    """
    by_level = (
        _stored_rows(partner=partner, organization=organization)
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
    winner = next((layer for layer in layers if layer.usable), None)
    return EffectiveSmtp(
        source=winner.level if winner else Level.NONE,
        settings=winner.settings if winner else None,
        layers=tuple(layers),
    )


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
    """Emails sent and failed per configuration level, last 24 hours and 7 days."""
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
        }
    return {"windows": list(windows), "rows": list(rows.values())}


def email_last_steps(*, email) -> list:
    """The steps of an email's last attempt (sent system emails keep them there)."""
    if email.attempts == 0:
        return []
    last = EmailAttempt.objects.filter(email=email).order_by("-number").first()
    return last.steps if last else []
