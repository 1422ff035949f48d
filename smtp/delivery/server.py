"""The SMTP client's own types: the server to talk to, and the secret it holds.

Built by the selectors from a stored configuration or the controller's
environment; the client needs nothing else of the app.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from core.redaction import remember
from smtp.enums import (
    OAUTH2_DEFAULT_SCOPES,
    AuthMethod,
    Level,
    OAuth2Provider,
    Security,
)


class Secret:
    """A value that never shows itself: not in ``repr``, ``str``, logs or JSON.

    Only the SMTP client calls ``reveal()``, to put it into the AUTH command;
    ``digest()`` tells two secrets apart (a cache key) without revealing either.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | None):
        self._value = value or ""

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('********')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def digest(self) -> str:
        return hashlib.sha256(self._value.encode()).hexdigest()


@dataclass(frozen=True)
class OAuth2Client:
    """How to get an access token for XOAUTH2: the provider, the client and its
    secret (client credentials) or the service account key (Google, JWT bearer)."""

    provider: OAuth2Provider
    client_id: str = ""
    client_secret: Secret = field(default_factory=lambda: Secret(""), repr=False)
    tenant_id: str = ""
    # Empty: the provider's default scope.
    scope: str = ""
    # A custom provider's token endpoint (Microsoft's and Google's are known).
    token_url: str = ""
    service_account_key: Secret = field(default_factory=lambda: Secret(""), repr=False)

    def __post_init__(self) -> None:
        remember(self.client_secret.reveal())
        remember(self.service_account_key.reveal())

    @property
    def effective_scope(self) -> str:
        return self.scope or OAUTH2_DEFAULT_SCOPES[OAuth2Provider(self.provider)]

    def digest(self) -> str:
        """Tells two clients apart (a cache key) without revealing a secret."""
        parts = (
            self.provider,
            self.client_id,
            self.client_secret.digest(),
            self.tenant_id,
            self.effective_scope,
            self.token_url,
            self.service_account_key.digest(),
        )
        return hashlib.sha256("|".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class ClientCertificate:
    """A client certificate chain (leaf first) and its private key, as PEM, for
    servers that authenticate clients by certificate (mutual TLS)."""

    cert: str
    key: Secret = field(repr=False)

    def digest(self) -> str:
        cert = hashlib.sha256(self.cert.encode()).hexdigest()
        return f"{cert}:{self.key.digest()}"


@dataclass(frozen=True)
class SmtpServer:
    """One level's SMTP server, as the SMTP client uses it: where, how, as whom."""

    level: Level
    host: str
    port: int
    security: Security
    use_insecure: bool
    username: str
    password: Secret = field(repr=False)
    retries: int
    sender_email: str
    # Where the sender comes from: "configured", "username" or "default".
    sender_origin: str
    # Controller defaults come from the operator's environment and may reach
    # private networks; partner and organization servers may not.
    trusted: bool
    configuration_id: int | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None
    auth_method: AuthMethod = AuthMethod.PASSWORD
    # With OAuth2: where the access token comes from (``username`` is the mailbox).
    oauth2: OAuth2Client | None = None
    # Presented in the TLS handshake (STARTTLS or implicit TLS) when set.
    client_certificate: ClientCertificate | None = field(default=None, repr=False)
    # The sender identity, each inherited field by field by the selectors: the
    # display name of From, Reply-To, and the envelope sender (MAIL FROM, where
    # bounces go; empty: the From address).
    sender_name: str = ""
    reply_to: str = ""
    bounce_address: str = ""
    # Delivery limits of this configuration (0: none), shared by every worker.
    messages_per_minute: int = 0
    max_connections: int = 0
    # When a session cannot be opened, the next level's configuration is used.
    failover: bool = False

    def __post_init__(self) -> None:
        # Wherever this server goes, logs never show the password or
        # its AUTH encodings.
        remember(self.password.reveal(), username=self.username)

    @property
    def use_tls(self) -> bool:
        return self.security != Security.NONE

    @property
    def password_set(self) -> bool:
        return bool(self.password)

    def envelope_sender(self, sender: str = "") -> str:
        """MAIL FROM for a message from ``sender`` (default: the From address)."""
        return self.bounce_address or sender or self.sender_email

    @property
    def authenticates(self) -> bool:
        """Whether the session sends AUTH (a password or an OAuth2 token)."""
        if self.uses_oauth2:
            return True
        if self.auth_method != AuthMethod.PASSWORD:
            return False
        return bool(self.username) and self.password_set

    @property
    def uses_oauth2(self) -> bool:
        return self.auth_method == AuthMethod.OAUTH2

    @property
    def limit_key(self) -> str:
        """Names this configuration in the limits every worker shares."""
        return f"{self.level}:{self.configuration_id or ''}"

    def identity(self) -> str:
        """Equal for two servers a session may be shared between (a cache key);
        worked out once per instance (the pool asks for it for every message)."""
        known = self.__dict__.get("_identity")
        if known is None:
            known = self.__dict__["_identity"] = self._identity()
        return known

    def _identity(self) -> str:
        parts = (
            self.level,
            self.configuration_id,
            self.updated_at,
            self.host,
            self.port,
            self.security,
            self.use_insecure,
            self.username,
            self.password.digest(),
            self.auth_method,
            self.oauth2.digest() if self.oauth2 else "",
            self.client_certificate.digest() if self.client_certificate else "",
        )
        return "|".join(str(part) for part in parts)
