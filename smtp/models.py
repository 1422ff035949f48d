"""SMTP configurations of partners and organizations."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from smtp.delivery.certificates import CertificateInfo, certificate_info_or_none
from smtp.delivery.hints import BASIC_AUTH_DISABLED, FAILED_OVER
from smtp.enums import (
    FINAL_STATUSES,
    IMPLICIT_TLS_PORT,
    SECRET_EXPIRY_WARNING_DAYS,
    TEST_KINDS,
    AuthMethod,
    EmailKind,
    EmailStatus,
    HealthStatus,
    Level,
    OAuth2Provider,
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
    "AuthMethod",
    "Email",
    "EmailAttempt",
    "EmailKind",
    "EmailStatus",
    "EmailTextOverride",
    "HealthStatus",
    "Level",
    "OAuth2Provider",
    "PartnerEmailIdentity",
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
    auth_method = models.CharField(
        max_length=16, choices=AuthMethod.choices, default=AuthMethod.PASSWORD
    )
    # OAuth2 (auth_method "oauth2"): the username is the mailbox sent as.
    oauth2_provider = models.CharField(
        max_length=16, choices=OAuth2Provider.choices, blank=True
    )
    oauth2_tenant_id = models.CharField(max_length=253, blank=True)
    oauth2_client_id = models.CharField(max_length=255, blank=True)
    # Write-only like the password: encrypted, never rendered, returned or audited.
    oauth2_client_secret = EncryptedSecretField(null=True, blank=True)
    # Empty: the provider's default scope.
    oauth2_scope = models.CharField(max_length=500, blank=True)
    # The token endpoint of a custom provider (Microsoft's and Google's are known).
    oauth2_token_url = models.CharField(max_length=2000, blank=True)
    # Google: the service account's JSON key (write-only, encrypted).
    oauth2_service_account_key = EncryptedSecretField(null=True, blank=True)
    oauth2_client_secret_expires_on = models.DateField(null=True, blank=True)
    # Mutual TLS: a client certificate (PEM, public) and its key (write-only,
    # encrypted at rest like the password), presented in the TLS handshake.
    client_cert = models.TextField(blank=True)
    client_key = EncryptedSecretField(null=True, blank=True)
    # The sender identity; each empty one is inherited from the levels below.
    sender_name = models.CharField(
        max_length=100, blank=True, help_text="Display name in From."
    )
    reply_to = models.EmailField(blank=True, help_text="Reply-To address.")
    bounce_address = models.EmailField(
        blank=True, help_text="Envelope sender (MAIL FROM); empty: the From address."
    )
    # Delivery limits; empty: the deployment's defaults (SMTP_DEFAULT_*).
    messages_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Messages per minute; 0: no limit."
    )
    max_connections = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Concurrent connections at most."
    )

    # Every setting but the secrets (which are copied or set on their own).
    SETTING_FIELDS = (
        "host",
        "port",
        "security",
        "use_insecure",
        "username",
        "retries",
        "sender_email",
        "auth_method",
        "oauth2_provider",
        "oauth2_tenant_id",
        "oauth2_client_id",
        "oauth2_scope",
        "oauth2_token_url",
        "oauth2_client_secret_expires_on",
        "sender_name",
        "reply_to",
        "bounce_address",
        "messages_per_minute",
        "max_connections",
    )
    SECRET_FIELDS = ("password", "oauth2_client_secret", "oauth2_service_account_key")

    class Meta:
        abstract = True

    def copy_settings_from(self, other: SmtpSettingsFields) -> None:
        """Take ``other``'s settings, secrets and client certificate included."""
        for name in (*self.SETTING_FIELDS, *self.SECRET_FIELDS):
            setattr(self, name, getattr(other, name))
        self.client_cert = other.client_cert
        self.client_key = other.client_key

    @property
    def use_tls(self) -> bool:
        return self.security != Security.NONE

    @property
    def password_set(self) -> bool:
        return bool(self.password)

    @property
    def oauth2_client_secret_set(self) -> bool:
        return bool(self.oauth2_client_secret)

    @property
    def oauth2_service_account_key_set(self) -> bool:
        return bool(self.oauth2_service_account_key)

    @property
    def uses_oauth2(self) -> bool:
        return self.auth_method == AuthMethod.OAUTH2

    @property
    def client_key_set(self) -> bool:
        return bool(self.client_key)

    @property
    def client_certificate(self) -> CertificateInfo | None:
        """The stored client certificate's subject and expiry, if one is stored."""
        return certificate_info_or_none(self.client_cert)

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
    # The client-secret expiry date the health check has warned about (audited
    # once per date).
    oauth2_expiry_warned_for = models.DateField(null=True, blank=True)
    # The kind of the last check's failure (e.g. basic_auth_disabled), if known:
    # a change of kind is news (an audit event), a repeat is not.
    health_hint_code = models.CharField(max_length=32, blank=True)
    # The health check found the client certificate expiring within 30 days (or
    # expired): a change either way is recorded once.
    client_cert_expiring = models.BooleanField(default=False)
    # When a Save & test passed for these settings; None: saved without a
    # passing test ("untested" on the page).
    tested_at = models.DateTimeField(null=True, blank=True)
    # Opt-in: when this configuration cannot open a session (resolve, connect,
    # TLS, authentication), emails go through the next level's instead.
    failover = models.BooleanField(default=False)

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

    @property
    def oauth2_secret_expiry_days(self) -> int | None:
        """Days until the OAuth2 client secret expires (negative: expired), when
        that is within the warning period; otherwise ``None``."""
        expires_on = self.oauth2_client_secret_expires_on
        if not self.uses_oauth2 or expires_on is None:
            return None
        days = (expires_on - timezone.now().date()).days
        return days if days <= SECRET_EXPIRY_WARNING_DAYS else None

    @property
    def failed_over(self) -> bool:
        """Its server could not be reached while sending: its emails went
        through the next level's (failover), until the next health check."""
        return self.is_failing and self.health_hint_code == FAILED_OVER

    @property
    def basic_auth_disabled(self) -> bool:
        """The last health check found that the provider refuses passwords."""
        return self.is_failing and self.health_hint_code == BASIC_AUTH_DISABLED


class PartnerEmailIdentity(models.Model):
    """How a partner's system emails identify it: the sender domains it allows
    (itself and its organizations), and its branding, which its organizations
    inherit."""

    partner = models.OneToOneField(
        "tenants.Partner", on_delete=models.CASCADE, related_name="email_identity"
    )
    # Lower-case A-labels, "acme.example" or "*.acme.example"; empty: any domain.
    allowed_sender_domains = models.JSONField(default=list, blank=True)
    product_name = models.CharField(max_length=100, blank=True)
    # "#rrggbb"; empty: the console's own colour.
    primary_color = models.CharField(max_length=7, blank=True)
    footer = models.TextField(max_length=500, blank=True)
    support_email = models.EmailField(blank=True)
    # A small PNG, JPEG or GIF (type checked by its bytes, never SVG), served by
    # its digest so that a changed logo is a new address.
    logo = models.BinaryField(null=True, blank=True)
    logo_type = models.CharField(max_length=32, blank=True)
    logo_digest = models.CharField(max_length=64, blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Email identity of partner {self.partner_id}"


class EmailTextOverride(models.Model):
    """A partner's subject and intro paragraph for one kind of system email, with
    placeholders from a fixed set (checked when saved); plain text, escaped in
    HTML."""

    # Not indexed alone: the unique (partner, kind) starts with it.
    partner = models.ForeignKey(
        "tenants.Partner",
        on_delete=models.CASCADE,
        related_name="email_text_overrides",
        db_index=False,
    )
    kind = models.CharField(max_length=32, choices=EmailKind.choices)
    subject = models.CharField(max_length=200, blank=True)
    intro = models.TextField(max_length=1000, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["partner", "kind"], name="email_text_override_per_kind"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} text of partner {self.partner_id}"


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
    # Not indexed alone: ``email_tenant_due`` starts with it.
    partner = models.ForeignKey(
        "tenants.Partner",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
    )
    organization = models.ForeignKey(
        "tenants.Organization",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    # Not indexed alone: ``email_requester`` starts with it.
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
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
    # The HTML alternative of ``body`` (same content and links); empty: plain text.
    html_body = EncryptedSecretField(null=True, blank=True)
    message_id = models.CharField(max_length=255, unique=True)
    # Where it went: the level in effect and the server, once tried.
    level_used = models.CharField(max_length=16, choices=Level.choices, blank=True)
    # The level whose configuration failed before ``level_used`` took over
    # (failover); empty: none did.
    fallback_from = models.CharField(max_length=16, choices=Level.choices, blank=True)
    server = models.CharField(max_length=300, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # Times it was put back for later without using a retry: held by its
    # configuration's limits, or refused by a throttling server.
    deferrals = models.PositiveIntegerField(default=0)
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

    # Not indexed alone: the unique (email, number) starts with it.
    email = models.ForeignKey(
        Email, on_delete=models.CASCADE, related_name="attempt_log", db_index=False
    )
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    ok = models.BooleanField()
    transient = models.BooleanField(default=False)
    level = models.CharField(max_length=16, choices=Level.choices, blank=True)
    fallback_from = models.CharField(max_length=16, choices=Level.choices, blank=True)
    server = models.CharField(max_length=300, blank=True)
    failed_step = models.CharField(max_length=32, blank=True)
    reply_code = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    # The server was throttling: the email was put back without using a retry.
    throttled = models.BooleanField(default=False)
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


class DeliveryLimit(models.Model):
    """The shared limits state of one configuration (``SmtpServer.limit_key``)
    when there is no Redis: workers lock this row while they decide."""

    key = models.CharField(max_length=64, primary_key=True)
    # A throttling server paused this configuration until then (Unix time), and
    # how many pauses in a row it took (each doubles the next one).
    paused_until = models.FloatField(default=0)
    streak = models.PositiveSmallIntegerField(default=0)
    touched = models.FloatField(default=0)

    def __str__(self) -> str:
        return f"Delivery limits of {self.key}"


class DeliveryLimitEntry(models.Model):
    """A message sent, or a connection open, counted against a configuration's
    limits (database backend)."""

    class Kind(models.TextChoices):
        MESSAGE = "message", "Message"
        CONNECTION = "connection", "Connection"

    # Not indexed alone: ``limit_entry_stamp`` starts with it.
    limit = models.ForeignKey(
        DeliveryLimit, on_delete=models.CASCADE, related_name="entries", db_index=False
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    token = models.CharField(max_length=40, unique=True)
    # Unix time: when a message reached the server (until then, the latest it
    # could), or when a connection's lease runs out.
    stamp = models.FloatField()

    class Meta:
        indexes = [
            # Counting and expiring one configuration's entries of one kind.
            models.Index(fields=["limit", "kind", "stamp"], name="limit_entry_stamp")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.limit_id}"
