"""The SMTP app's enumerations: security modes, levels, email kinds and statuses.

Below everything else of the app: the SMTP client, the models and the pages all
use them.
"""

from __future__ import annotations

from django.db import models

IMPLICIT_TLS_PORT = 465


class Security(models.TextChoices):
    """How the connection is protected; the labels are the wording every page,
    email and hint uses."""

    NONE = "none", "Off (plain text)"
    STARTTLS = "starttls", "STARTTLS (required)"
    SSL = "ssl", "Implicit TLS (SMTPS)"


class HealthStatus(models.TextChoices):
    UNKNOWN = "unknown", "Not checked yet"
    OK = "ok", "Healthy"
    FAILING = "failing", "Failing"


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


class EmailKind(models.TextChoices):
    TEST = "test", "Test email"
    VERIFY = "verify", "Verification (no mail sent)"
    PASSWORD_SETUP = "password_setup", "Password setup"
    PASSWORD_RESET = "password_reset", "Password reset"
    ALERT = "alert", "Alert notification"


# Test kinds are tried once, while a person waits; system kinds are retried.
TEST_KINDS = (EmailKind.TEST, EmailKind.VERIFY)
# Emails a person waits for: the interactive lane (CELERY_QUEUE_INTERACTIVE).
# The rest (alerts) are the bulk lane, shared fairly between tenants.
INTERACTIVE_KINDS = (
    EmailKind.TEST,
    EmailKind.VERIFY,
    EmailKind.PASSWORD_SETUP,
    EmailKind.PASSWORD_RESET,
)
# The kinds a partner brands, words and previews (a verification sends nothing).
BRANDED_KINDS = (
    EmailKind.PASSWORD_SETUP,
    EmailKind.PASSWORD_RESET,
    EmailKind.ALERT,
    EmailKind.TEST,
)


class EmailStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


FINAL_STATUSES = (EmailStatus.SENT, EmailStatus.FAILED)


class AuthMethod(models.TextChoices):
    """How the console proves who it is to the SMTP server."""

    PASSWORD = "password", "Password"
    OAUTH2 = "oauth2", "OAuth2 (XOAUTH2)"
    # The TLS client certificate authenticates; no SMTP AUTH is sent.
    CERTIFICATE = "certificate", "Client certificate"
    NONE = "none", "None"


class OAuth2Provider(models.TextChoices):
    MICROSOFT = "microsoft", "Microsoft 365 (Entra ID)"
    GOOGLE = "google", "Google Workspace (service account)"
    CUSTOM = "custom", "Other (token URL)"


# The scope asked for when Scope is left empty.
OAUTH2_DEFAULT_SCOPES = {
    OAuth2Provider.MICROSOFT: "https://outlook.office365.com/.default",
    OAuth2Provider.GOOGLE: "https://mail.google.com/",
    OAuth2Provider.CUSTOM: "",
}

# A client secret's coming expiry is announced this many days before.
SECRET_EXPIRY_WARNING_DAYS = 14

# The SMTP server each provider documents for XOAUTH2: host, port, security.
OAUTH2_PROVIDER_SERVERS = {
    OAuth2Provider.MICROSOFT: ("smtp.office365.com", 587, Security.STARTTLS),
    OAuth2Provider.GOOGLE: ("smtp.gmail.com", 587, Security.STARTTLS),
}
