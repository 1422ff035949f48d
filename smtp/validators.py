"""The rules of an SMTP configuration, in one place for forms, API and services.

Every message names the field and says how to fix it. ``smtp_input_validate``
returns the values to store, or raises ``SmtpValidationError`` with the messages
by field; nothing is saved in that case.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from enum import StrEnum

from core.addresses import AddressError, check_address
from core.text import has_control_characters
from smtp.enums import Security, security_from_tls
from smtp.identity import check_allowed_domain, validate_display_name
from smtp.models import SmtpSettingsFields

# Messages shared with the type checks of forms and serializers.
PORT_MESSAGE = (
    "Port must be a whole number from 1 to 65535 (587 for STARTTLS, 465 for "
    "implicit TLS)."
)
RETRIES_MESSAGE = "Retries must be a whole number from 0 to 10."
AUTH_WITHOUT_TLS_MESSAGE = (
    "Without TLS enabled, authentication will not work: turn TLS on, or clear "
    "Username and Password to send without authentication."
)

MAX_RETRIES = 10
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_HOST_WITH_PORT = re.compile(r"^(?P<host>[^:\[\]]+):(?P<port>\d+)$")


class SmtpValidationError(Exception):
    """Messages by field name; the input as a whole was refused."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


class PasswordAction(StrEnum):
    KEEP = "keep"
    SET = "set"
    CLEAR = "clear"


@dataclass(frozen=True)
class SmtpInput:
    """What a person or client submitted, after type conversion.

    ``password`` empty or ``None`` means "keep the stored one" (when allowed).
    ``security`` ``None`` means "derive it from ``use_tls`` and the port".
    """

    host: str = ""
    port: int | None = 587
    use_tls: bool | None = True
    security: str | None = None
    use_insecure: bool = False
    username: str = ""
    password: str | None = None
    retries: int | None = 3
    sender_email: str = ""
    remove_password: bool = False
    # The sender identity; omitted (old clients): empty, i.e. inherited.
    sender_name: str = ""
    reply_to: str = ""
    bounce_address: str = ""


@dataclass(frozen=True)
class ValidatedSmtp:
    """Values to store, and what happens to the stored password."""

    host: str
    port: int
    security: Security
    use_insecure: bool
    username: str
    retries: int
    sender_email: str
    password_action: PasswordAction
    new_password: str | None = field(default=None, repr=False)
    notes: tuple[str, ...] = ()
    sender_name: str = ""
    reply_to: str = ""
    bounce_address: str = ""


def validate_host(value: str) -> str:
    """A hostname (FQDN, IDNA allowed) or an IPv4/IPv6 address; returns it normalized.

    Raises ``ValueError`` with a message naming Host and the fix.
    """
    host = value.strip()
    if not host:
        raise ValueError(
            "Host is required: enter the SMTP server's name (e.g. smtp.example.com) "
            "or IP address."
        )
    if "://" in host:
        scheme = host.split("://", 1)[0]
        raise ValueError(
            f"Host must be a name or address without a scheme: remove '{scheme}://'."
        )
    if any(ch.isspace() for ch in host):
        raise ValueError("Host must not contain spaces or line breaks.")
    if "/" in host or "?" in host or "#" in host:
        raise ValueError(
            "Host must not contain a path: enter only the server name, "
            "e.g. smtp.example.com."
        )
    if "@" in host:
        raise ValueError(
            "Host must not contain '@': put the account name in Username and only "
            "the server name in Host."
        )
    if host.startswith("[") and host.endswith("]"):
        raise ValueError(
            "Host: write an IPv6 address without brackets, e.g. 2001:db8::25."
        )
    match = _HOST_WITH_PORT.match(host)
    if match:
        raise ValueError(
            f"Host must not include a port: enter {match['host']} in Host and "
            f"{match['port']} in Port."
        )
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if ":" in host or "[" in host or "]" in host:
        raise ValueError(
            "Host is not a valid IPv6 address: check it, or enter the server name."
        )
    name = host.rstrip(".").lower()
    try:
        ascii_name = name.encode("idna").decode("ascii")
    except UnicodeError as error:
        raise ValueError(
            "Host is not a valid domain name: check for empty parts (..) or "
            "characters a domain name cannot have."
        ) from error
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(
            "Host is not a valid domain name: use letters, digits and hyphens, "
            "separated by dots (e.g. smtp.example.com)."
        )
    if labels[-1].isdigit():
        raise ValueError("Host looks like an IPv4 address but is not a valid one.")
    return name


def validate_address(
    name: str, label: str, value: str, errors: dict[str, list[str]], *, required: bool
) -> str:
    """An email address for a header or envelope; adds a message to ``errors``."""
    address = (value or "").strip()
    if "\r" in (value or "") or "\n" in (value or ""):
        errors.setdefault(name, []).append(
            f"{label} must not contain line breaks: enter one address."
        )
        return address
    if not address:
        if required:
            errors.setdefault(name, []).append(
                f"{label} is required: enter an email address, e.g. ops@example.com."
            )
        return address
    if validate_no_controls(name, label, address, errors):
        return address
    problem = address_problem(
        label,
        address,
        syntax=f"{label} must be an email address, e.g. ops@example.com.",
    )
    if problem:
        errors.setdefault(name, []).append(problem)
    return address


def address_problem(label: str, address: str, *, syntax: str) -> str | None:
    """Why ``address`` cannot be sent to (``syntax`` if it is no address at all),
    or ``None``.

    International domains and non-ASCII local parts are welcome: the domain must
    be valid IDNA; a non-ASCII local part needs a server that offers SMTPUTF8,
    which only the delivery can tell.
    """
    try:
        check_address(address)
    except AddressError as problem:
        return syntax if problem.syntax else f"{label}: {problem}"
    return None


def validate_no_controls(
    name: str, label: str, value: str, errors: dict[str, list[str]]
) -> bool:
    """Refuse control characters (ESC, DEL...) in a value bound for an SMTP
    command or a header; returns whether it did."""
    if not has_control_characters(value):
        return False
    errors.setdefault(name, []).append(
        f"{label} must not contain control characters (such as ESC, tab or DEL): "
        "retype it without them."
    )
    return True


def validate_one_line(
    name: str, label: str, value: str, errors: dict[str, list[str]]
) -> None:
    """Header-bound values (sender, username, subject) are one line."""
    if "\r" in value or "\n" in value:
        errors.setdefault(name, []).append(
            f"{label} must not contain line breaks: enter it on one line."
        )


def _server_changes(
    data: SmtpInput,
    current: SmtpSettingsFields,
    host: str | None,
    security: Security | None,
) -> list[str]:
    """What differs from the server and account the stored password was entered for.

    Weaker checks of the server's identity count too: turning certificate
    verification off, or TLS off. Switching between STARTTLS and implicit TLS
    does not: both verify the certificate before AUTH, and there is no fall-back.
    """
    changes = []
    if host is not None and host != current.host:
        changes.append(f"Host changed from {current.host}")
    if data.port is not None and data.port != current.port:
        changes.append(f"Port changed from {current.port}")
    if data.username.strip() != current.username:
        changes.append("Username changed")
    if data.use_insecure and not current.use_insecure:
        changes.append("Certificate verification turned off (Insecure)")
    if security == Security.NONE and current.security != Security.NONE:
        changes.append("TLS turned off")
    return changes


def validate_sender_identity(
    data: SmtpInput,
    *,
    username: str,
    sender_email: str,
    allowed_domains: tuple[str, ...],
    errors: dict[str, list[str]],
) -> tuple[str, str, str]:
    """Sender name, Reply-To and bounce address; with ``allowed_domains`` (the
    partner's), the sender, Reply-To and bounce address must be at one of them.

    Returns the values to store (name, reply_to, bounce_address).
    """
    sender_name = validate_display_name(
        "sender_name", "Sender name", data.sender_name, errors
    )
    reply_to = validate_address(
        "reply_to", "Reply-To", data.reply_to, errors, required=False
    )
    bounce_address = validate_address(
        "bounce_address", "Bounce address", data.bounce_address, errors, required=False
    )
    if allowed_domains:
        if sender_email:
            check_allowed_domain(
                "sender_email", "Sender", sender_email, allowed_domains, errors
            )
        elif "@" in username and "sender_email" not in errors:
            # An empty Sender sends as the username when it is an address.
            check_allowed_domain(
                "sender_email",
                "Sender (empty, so the username)",
                username,
                allowed_domains,
                errors,
            )
        check_allowed_domain("reply_to", "Reply-To", reply_to, allowed_domains, errors)
        check_allowed_domain(
            "bounce_address", "Bounce address", bounce_address, allowed_domains, errors
        )
    return sender_name, reply_to, bounce_address


def smtp_input_validate(
    data: SmtpInput,
    *,
    current: SmtpSettingsFields | None,
    allowed_domains: tuple[str, ...] = (),
) -> ValidatedSmtp:
    """Check ``data`` against every rule; ``current`` is the stored configuration,
    ``allowed_domains`` the partner's allowed sender domains (empty: any)."""
    errors: dict[str, list[str]] = {}

    def error(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    host: str | None = None
    try:
        host = validate_host(data.host or "")
    except ValueError as problem:
        error("host", str(problem))

    port = data.port
    if port is None or not 1 <= port <= 65535:
        error("port", PORT_MESSAGE)
        port = None

    retries = data.retries
    if retries is None or not 0 <= retries <= MAX_RETRIES:
        error("retries", RETRIES_MESSAGE)

    security: Security | None = None
    if data.security not in (None, ""):
        if data.security not in Security.values:
            error(
                "security",
                "TLS mode must be one of: none, starttls, ssl (implicit TLS).",
            )
        else:
            security = Security(data.security)
            if data.use_tls is not None and data.use_tls != (security != Security.NONE):
                error(
                    "use_tls",
                    f"TLS is {'on' if data.use_tls else 'off'} but TLS mode is "
                    f"{security.value}: make them agree, or send only one of them.",
                )
    elif port is not None:
        use_tls = True if data.use_tls is None else data.use_tls
        security = security_from_tls(use_tls=use_tls, port=port)

    username = (data.username or "").strip()
    sender_email = (data.sender_email or "").strip()
    validate_one_line("username", "Username", data.username or "", errors)
    validate_one_line("sender_email", "Sender", data.sender_email or "", errors)
    # A username that is an address becomes the sender when Sender is empty.
    for name, label, value in (
        ("username", "Username", username),
        ("sender_email", "Sender", sender_email),
    ):
        if name not in errors:
            validate_no_controls(name, label, value, errors)
    if len(username) > 254:
        error("username", "Username must be at most 254 characters.")
    if sender_email and "sender_email" not in errors:
        problem = address_problem(
            "Sender",
            sender_email,
            syntax="Sender must be an email address, e.g. alerts@example.com, or "
            "empty to use the username.",
        )
        if problem:
            error("sender_email", problem)
    sender_name, reply_to, bounce_address = validate_sender_identity(
        data,
        username=username,
        sender_email=sender_email,
        allowed_domains=allowed_domains,
        errors=errors,
    )
    if data.password is not None and len(data.password) > 1024:
        error("password", "Password must be at most 1024 characters.")

    if data.use_insecure and security == Security.NONE:
        error(
            "use_insecure",
            "Insecure (skip certificate verification) only applies with TLS: turn "
            "TLS on, or untick Insecure.",
        )

    # The password: set, keep the stored one, or clear it.
    notes: list[str] = []
    new_password = data.password or None
    if data.remove_password:
        action = PasswordAction.CLEAR
        if new_password:
            error(
                "password",
                "Leave Password empty when removing the stored password.",
            )
        if username:
            notes.append("Username cleared with the password.")
        username = ""
    elif new_password:
        action = PasswordAction.SET
    elif current is not None and current.password_set:
        changes = _server_changes(data, current, host, security)
        if not username:
            action = PasswordAction.CLEAR
            notes.append("Stored password removed, since Username is now empty.")
        elif changes:
            action = PasswordAction.CLEAR
            error(
                "password",
                f"{'; '.join(changes)}: enter the password again. A stored password "
                "is only sent to the server and username it was entered for, and "
                "never with weaker checks of that server's identity.",
            )
        else:
            action = PasswordAction.KEEP
    else:
        action = PasswordAction.CLEAR

    has_password = action in (PasswordAction.SET, PasswordAction.KEEP)
    if username and not has_password and "password" not in errors:
        error(
            "password",
            "Enter the password for this username (authentication needs both), or "
            "clear Username to send without authentication.",
        )
    if has_password and not username and "username" not in errors:
        error(
            "username",
            "Enter the username that goes with this password, or leave Password empty.",
        )
    if (username or new_password) and security == Security.NONE:
        error("use_tls", AUTH_WITHOUT_TLS_MESSAGE)

    if errors or host is None or port is None or security is None or retries is None:
        raise SmtpValidationError(errors)
    return ValidatedSmtp(
        host=host,
        port=port,
        security=security,
        use_insecure=data.use_insecure,
        username=username,
        retries=retries,
        sender_email=sender_email,
        password_action=action,
        new_password=new_password if action == PasswordAction.SET else None,
        notes=tuple(notes),
        sender_name=sender_name,
        reply_to=reply_to,
        bounce_address=bounce_address,
    )
