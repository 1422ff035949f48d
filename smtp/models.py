"""SMTP configurations of partners and organizations."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from smtp.enums import (
    FINAL_STATUSES,
    IMPLICIT_TLS_PORT,
    TEST_KINDS,
    EmailKind,
    EmailStatus,
    HealthStatus,
    Level,
    Security,
    security_from_tls,
)
from smtp.fields import EncryptedSecretField

# The enumerations live in smtp.enums (the SMTP client uses them without the
# database); they are named here too for the code that reads them with models.
__all__ = [
    "FINAL_STATUSES",
    "IMPLICIT_TLS_PORT",
    "TEST_KINDS",
    "Email",
    "EmailAttempt",
    "EmailKind",
    "EmailStatus",
    "HealthStatus",
    "Level",
    "Security",
    "SmtpConfiguration",
    "SmtpDraft",
    "SmtpSettingsFields",
    "security_from_tls",
]


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

    # Every setting but the password (which is copied or set on its own).
    SETTING_FIELDS = (
        "host",
        "port",
        "security",
        "use_insecure",
        "username",
        "retries",
        "sender_email",
    )

    class Meta:
        abstract = True

    def copy_settings_from(self, other: SmtpSettingsFields) -> None:
        """Take ``other``'s settings, password included."""
        for name in self.SETTING_FIELDS:
            setattr(self, name, getattr(other, name))
        self.password = other.password

    @property
    def use_tls(self) -> bool:
        return self.security != Security.NONE

    @property
    def password_set(self) -> bool:
        return bool(self.password)

    @property
    def level(self) -> Level:
        """Partner-level without an organization, else organization-level."""
        return Level.PARTNER if self.organization_id is None else Level.ORGANIZATION


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
    # The periodic health check (no mail sent: up to RCPT TO, then RSET).
    health_status = models.CharField(
        max_length=16, choices=HealthStatus.choices, default=HealthStatus.UNKNOWN
    )
    health_checked_at = models.DateTimeField(null=True, blank=True)
    health_detail = models.CharField(max_length=500, blank=True)

    class Meta:
        verbose_name = "SMTP configuration"
        verbose_name_plural = "SMTP configurations"
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
    def is_failing(self) -> bool:
        return self.health_status == HealthStatus.FAILING


class SmtpDraft(SmtpSettingsFields):
    """Unsaved form values under test ("Send Test Email" before Save).

    Stored like a configuration (password encrypted) and deleted when the test
    ends.
    """

    partner = models.ForeignKey(
        "tenants.Partner", on_delete=models.CASCADE, related_name="+"
    )
    organization = models.ForeignKey(
        "tenants.Organization",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Draft SMTP {self.host}:{self.port}"


class Email(models.Model):
    """One email in the outbox. The row is the truth; tasks only carry its id."""

    kind = models.CharField(max_length=32, choices=EmailKind.choices)
    status = models.CharField(
        max_length=16, choices=EmailStatus.choices, default=EmailStatus.QUEUED
    )
    partner = models.ForeignKey(
        "tenants.Partner",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    organization = models.ForeignKey(
        "tenants.Organization",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # The unsaved configuration a test email tries, if any.
    draft = models.OneToOneField(
        SmtpDraft, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Empty: the sender of the configuration in effect when it is sent.
    sender = models.EmailField(max_length=254, blank=True)
    recipient = models.EmailField(max_length=254)
    subject = models.CharField(max_length=255)
    # Encrypted: system emails carry one-time links.
    body = EncryptedSecretField()
    message_id = models.CharField(max_length=255, unique=True)
    # Where it went: the level in effect and the server, once tried.
    level_used = models.CharField(max_length=16, choices=Level.choices, blank=True)
    server = models.CharField(max_length=300, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # When a task for it was last handed to the broker (None: never, e.g. the
    # broker was down); the sweeper hands out again what waits too long.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    claim_token = models.UUIDField(null=True, blank=True)
    # Times its lease ran out while it was being sent (its worker stopped) since
    # its last recorded attempt; past SMTP_MAX_REHANDS it fails instead.
    rehands = models.PositiveSmallIntegerField(default=0)
    # Live progress of the current attempt: the step running, and every step.
    progress = models.CharField(max_length=32, blank=True)
    steps = models.JSONField(default=list, blank=True)
    failed_step = models.CharField(max_length=32, blank=True)
    reply_code = models.IntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    hint = models.TextField(blank=True)
    error_field = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The sweeper and batch claims look only at unfinished rows.
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status__in=["queued", "sending"]),
                name="email_due",
            ),
            models.Index(
                fields=["partner", "organization", "status", "next_attempt_at"],
                name="email_tenant_due",
            ),
            models.Index(fields=["requested_by", "created_at"], name="email_requester"),
            models.Index(fields=["created_at"], name="email_created"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.recipient} ({self.status})"

    @property
    def is_test(self) -> bool:
        return self.kind in TEST_KINDS

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


class EmailAttempt(models.Model):
    """One try to send an email, with every step of it."""

    email = models.ForeignKey(
        Email, on_delete=models.CASCADE, related_name="attempt_log"
    )
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    ok = models.BooleanField()
    transient = models.BooleanField(default=False)
    level = models.CharField(max_length=16, choices=Level.choices, blank=True)
    server = models.CharField(max_length=300, blank=True)
    failed_step = models.CharField(max_length=32, blank=True)
    reply_code = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    steps = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["email", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["email", "number"], name="email_attempt_number_unique"
            )
        ]

    def __str__(self) -> str:
        return f"Attempt {self.number} of email {self.email_id}"
