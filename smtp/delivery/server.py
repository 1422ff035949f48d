"""The SMTP client's own types: the server to talk to, and the secret it holds.

Built by the selectors from a stored configuration or the controller's
environment; the client needs nothing else of the app.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from core.redaction import remember
from smtp.enums import Level, Security


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
    # The sender identity, each inherited field by field by the selectors: the
    # display name of From, Reply-To, and the envelope sender (MAIL FROM, where
    # bounces go; empty: the From address).
    sender_name: str = ""
    reply_to: str = ""
    bounce_address: str = ""

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
        return bool(self.username) and self.password_set

    def identity(self) -> str:
        """Equal for two servers a session may be shared between (a cache key)."""
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
        )
        return "|".join(str(part) for part in parts)
