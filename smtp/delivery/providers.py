"""Mail providers that stop accepting passwords, and whether a server uses one.

Microsoft disables Basic authentication for SMTP AUTH in existing Exchange
Online tenants at the end of December 2026 (message center MC786329); Google
Workspace accepts only OAuth2 or app passwords since 14 March 2025. A
configuration that still logs in to their endpoints with a password gets a
standing notice with the date, before its mail stops.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Protocol


class HasCredentials(Protocol):
    username: str
    auth_method: str


def uses_password(config: HasCredentials) -> bool:
    """Whether a configuration (stored, draft or the client's server) logs in with
    a password: the one place that decides it (Authentication is Password and a
    username is set)."""
    return config.auth_method == "password" and bool(config.username)


@dataclass(frozen=True)
class BasicAuthRetirement:
    """A provider's end of password logins over SMTP, for a notice."""

    provider: str
    date: datetime.date
    # Passwords are already refused (the date has passed) or will be.
    message: str


MICROSOFT_365 = BasicAuthRetirement(
    provider="Microsoft 365",
    date=datetime.date(2026, 12, 31),
    message=(
        "Microsoft 365 turns off password (Basic) authentication for SMTP AUTH at "
        "the end of December 2026 (by 31 December 2026): after that, emails through "
        "this configuration fail with 535 5.7.139. Switch Authentication to OAuth2 "
        "before then."
    ),
)
GOOGLE = BasicAuthRetirement(
    provider="Google",
    date=datetime.date(2025, 3, 14),
    message=(
        "Google Workspace and Gmail accept no account passwords for SMTP since "
        "14 March 2025: only an app password or OAuth2. Switch Authentication to "
        "OAuth2, or make sure Password is an app password."
    ),
)

# Exact host names, lower case.
_HOSTS = {
    "smtp.office365.com": MICROSOFT_365,
    "smtp-mail.outlook.com": MICROSOFT_365,
    "outlook.office365.com": MICROSOFT_365,
    "smtp.outlook.com": MICROSOFT_365,
    "smtp.gmail.com": GOOGLE,
    "smtp-relay.gmail.com": GOOGLE,
    "smtp.googlemail.com": GOOGLE,
}
# Host name suffixes (a tenant's MX endpoint, e.g. contoso-com.mail.protection...).
_SUFFIXES = (
    (".mail.protection.outlook.com", MICROSOFT_365),
    (".mail.protection.outlook.de", MICROSOFT_365),
)


def basic_auth_retirement(host: str) -> BasicAuthRetirement | None:
    """The provider retiring password logins at ``host``, if it is a known one."""
    name = host.strip().rstrip(".").lower()
    if name in _HOSTS:
        return _HOSTS[name]
    return next((found for suffix, found in _SUFFIXES if name.endswith(suffix)), None)
