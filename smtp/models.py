"""SMTP configurations of partners and organizations."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from smtp.fields import EncryptedSecretField

IMPLICIT_TLS_PORT = 465


class Security(models.TextChoices):
    NONE = "none", "None (plain text)"
    STARTTLS = "starttls", "STARTTLS (required)"
    SSL = "ssl", "Implicit TLS (SMTPS)"


class Level(models.TextChoices):
    ORGANIZATION = "organization", "Organization"
    PARTNER = "partner", "Partner"
    CONTROLLER = "controller", "Controller default"
    NONE = "none", "None"


def security_from_tls(*, use_tls: bool, port: int) -> Security:
    """The documented rule: TLS on port 465 is implicit TLS, on any other STARTTLS."""
    if not use_tls:
        return Security.NONE
    return Security.SSL if port == IMPLICIT_TLS_PORT else Security.STARTTLS


class SmtpSettingsFields(models.Model):
    """The fields of an SMTP server configuration, shared by every table holding one."""

    host = models.CharField(max_length=253)
    port = models.PositiveIntegerField(default=587)
    security = models.CharField(
        max_length=16, choices=Security.choices, default=Security.STARTTLS
    )
    use_insecure = models.BooleanField(
        default=False, help_text="Skip certificate verification (only when true)."
    )
    username = models.CharField(max_length=254, blank=True)
    # Write-only: encrypted at rest, never rendered, returned, logged or audited.
    password = EncryptedSecretField(null=True, blank=True)
    retries = models.PositiveSmallIntegerField(default=3)
    sender_email = models.EmailField(
        blank=True, help_text="From address; empty: the username if it is an address."
    )

    class Meta:
        abstract = True

    @property
    def use_tls(self) -> bool:
        return self.security != Security.NONE

    @property
    def password_set(self) -> bool:
        return bool(self.password)


class SmtpConfiguration(SmtpSettingsFields):
    """A partner's configuration (no organization) or an organization's."""

    partner = models.ForeignKey(
        "tenants.Partner", on_delete=models.CASCADE, related_name="smtp_configurations"
    )
    organization = models.OneToOneField(
        "tenants.Organization",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="smtp_configuration",
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["partner"],
                condition=models.Q(organization__isnull=True),
                name="smtp_one_configuration_per_partner",
            ),
            models.CheckConstraint(
                condition=models.Q(port__gte=1, port__lte=65535),
                name="smtp_port_in_range",
            ),
            models.CheckConstraint(
                condition=models.Q(retries__lte=10), name="smtp_retries_at_most_10"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.level.label} SMTP {self.host}:{self.port}"

    @property
    def level(self) -> Level:
        return Level.PARTNER if self.organization_id is None else Level.ORGANIZATION
