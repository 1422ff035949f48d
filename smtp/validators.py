"""The rules of an SMTP configuration, in one place for forms, API and services.

Every message names the field and says how to fix it. ``smtp_input_validate``
returns the values to store, or raises ``SmtpValidationError`` with the messages
by field; nothing is saved in that case.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from django.conf import settings

from core.addresses import AddressError, check_address
from core.env import ControllerSmtp
from core.text import has_control_characters
from smtp.delivery.certificates import CertificateError, certificate_info, check_key
from smtp.enums import AuthMethod, OAuth2Provider, Security, security_from_tls
from smtp.identity import check_allowed_domain, validate_display_name
from smtp.models import SmtpSettingsFields
from smtp.netpolicy import address_permitted

# Messages shared with the type checks of forms and serializers.
PORT_MESSAGE = (
    "Port must be a whole number from 1 to 65535 (587 for STARTTLS, 465 for "
    "implicit TLS)."
)
RETRIES_MESSAGE = "Retries must be a whole number from 0 to 10."
MAX_MESSAGES_PER_MINUTE = 1_000_000
MAX_CONNECTIONS = 1000
MESSAGES_PER_MINUTE_MESSAGE = (
    "Messages per minute must be a whole number from 0 (no limit) to 1,000,000, "
    "or empty for the default."
)
MAX_CONNECTIONS_MESSAGE = (
    "Max concurrent connections must be a whole number from 0 (no limit) to "
    "1000, or empty for the default."
)
FAILOVER_MESSAGE = "Failover must be on or off (true or false)."
AUTH_WITHOUT_TLS_MESSAGE = (
    "Without TLS enabled, authentication will not work: choose STARTTLS or "
    "Implicit TLS under Security (use_tls), or clear "
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
    # ``None``: password, as before Authentication was a choice.
    auth_method: str | None = None
    oauth2_provider: str = ""
    oauth2_tenant_id: str = ""
    oauth2_client_id: str = ""
    # Empty or ``None``: keep the stored secret or key (when allowed).
    oauth2_client_secret: str | None = field(default=None, repr=False)
    oauth2_scope: str = ""
    oauth2_token_url: str = ""
    oauth2_service_account_key: str | None = field(default=None, repr=False)
    oauth2_client_secret_expires_on: date | None = None
    # ``None``: keep the stored client certificate (and key); "": remove both.
    client_cert: str | None = None
    # Empty or ``None``: keep the stored key (when allowed).
    client_key: str | None = field(default=None, repr=False)
    # The sender identity; omitted (old clients): empty, i.e. inherited.
    sender_name: str = ""
    reply_to: str = ""
    bounce_address: str = ""
    # Delivery limits; ``None``: the deployment's default; 0: no limit.
    messages_per_minute: int | None = None
    max_connections: int | None = None
    # A stored configuration's only (not a draft's): hand its emails to the next
    # level's when its server cannot be reached. ``None``: keep the stored choice
    # (a page that does not offer it: no level below).
    failover: bool | None = False


@dataclass(frozen=True)
class ValidatedSmtp:
    """Values to store, and what happens to the stored secrets."""

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
    auth_method: AuthMethod = AuthMethod.PASSWORD
    oauth2_provider: str = ""
    oauth2_tenant_id: str = ""
    oauth2_client_id: str = ""
    oauth2_scope: str = ""
    oauth2_token_url: str = ""
    oauth2_client_secret_expires_on: date | None = None
    client_secret_action: PasswordAction = PasswordAction.CLEAR
    new_client_secret: str | None = field(default=None, repr=False)
    key_action: PasswordAction = PasswordAction.CLEAR
    new_key: str | None = field(default=None, repr=False)
    # What happens to the stored client certificate and key: kept, replaced
    # (``new_client_cert`` with ``new_client_key``, or a new key for the stored
    # certificate) or removed.
    client_cert_action: PasswordAction = PasswordAction.KEEP
    new_client_cert: str | None = None
    new_client_key: str | None = field(default=None, repr=False)
    sender_name: str = ""
    reply_to: str = ""
    bounce_address: str = ""
    messages_per_minute: int | None = None
    max_connections: int | None = None
    failover: bool = False


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
    limits = (
        ("messages_per_minute", MAX_MESSAGES_PER_MINUTE, MESSAGES_PER_MINUTE_MESSAGE),
        ("max_connections", MAX_CONNECTIONS, MAX_CONNECTIONS_MESSAGE),
    )
    for name, most, message in limits:
        value = getattr(data, name)
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not 0 <= value <= most
        ):
            error(name, message)
    failover = data.failover
    if failover is None:
        failover = bool(getattr(current, "failover", False))
    elif not isinstance(failover, bool):
        error("failover", FAILOVER_MESSAGE)

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
            "Skipping certificate verification (use_insecure) only applies with TLS: "
            "choose STARTTLS or Implicit TLS under Security, or untick it.",
        )

    auth_method = _auth_method(data.auth_method, errors)
    notes: list[str] = []
    new_password = data.password or None
    oauth2: dict = {}
    if auth_method == AuthMethod.PASSWORD:
        action, username = _password_action(
            data, current, host, security, username, errors, notes
        )
    else:
        action = PasswordAction.CLEAR
        label = auth_method.label if auth_method else "not a password"
        if new_password:
            error(
                "password",
                f"Leave Password empty: Authentication is {label}, which sends no "
                "password.",
            )
        elif current is not None and current.password_set:
            notes.append(f"Stored password removed: Authentication is now {label}.")
        if auth_method == AuthMethod.OAUTH2:
            oauth2 = _oauth2_validate(data, current, host, security, username, errors)
            if security == Security.NONE:
                error("use_tls", OAUTH2_WITHOUT_TLS_MESSAGE)
    if auth_method not in (None, AuthMethod.OAUTH2) and _has_oauth2_values(data):
        error(
            "auth_method",
            "OAuth2 settings were given, but Authentication is "
            f"{auth_method.label}: set it to oauth2, or leave the OAuth2 settings "
            "out.",
        )

    cert_action, new_cert, new_key = _client_certificate(
        data, current, host, security, errors
    )
    if auth_method == AuthMethod.CERTIFICATE and "client_cert" not in errors:
        keeps_stored = cert_action == PasswordAction.KEEP and bool(
            current is not None and current.client_cert
        )
        if cert_action != PasswordAction.SET and not keeps_stored:
            error(
                "client_cert",
                "Authentication is Client certificate: paste the client certificate "
                "(PEM) and its key, or choose another Authentication.",
            )

    if (
        errors
        or host is None
        or port is None
        or security is None
        or retries is None
        or auth_method is None
    ):
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
        auth_method=auth_method,
        client_cert_action=cert_action,
        new_client_cert=new_cert,
        new_client_key=new_key,
        sender_name=sender_name,
        reply_to=reply_to,
        bounce_address=bounce_address,
        messages_per_minute=data.messages_per_minute,
        max_connections=data.max_connections,
        failover=bool(failover),
        **oauth2,
    )


def _has_oauth2_values(data: SmtpInput) -> bool:
    return any(
        (
            (data.oauth2_provider or "").strip(),
            (data.oauth2_tenant_id or "").strip(),
            (data.oauth2_client_id or "").strip(),
            data.oauth2_client_secret,
            (data.oauth2_token_url or "").strip(),
            data.oauth2_service_account_key,
        )
    )


def _auth_method(value: str | None, errors: dict[str, list[str]]) -> AuthMethod | None:
    if value in (None, ""):
        return AuthMethod.PASSWORD
    if value not in AuthMethod.values:
        errors.setdefault("auth_method", []).append(
            "Authentication must be one of: password, oauth2, certificate, none."
        )
        return None
    return AuthMethod(value)


def _password_action(
    data: SmtpInput,
    current: SmtpSettingsFields | None,
    host: str | None,
    security: Security | None,
    username: str,
    errors: dict[str, list[str]],
    notes: list[str],
) -> tuple[PasswordAction, str]:
    """Set, keep or clear the stored password; the username to store with it."""

    def error(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

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
    return action, username


# -- OAuth2 ------------------------------------------------------------------------

OAUTH2_WITHOUT_TLS_MESSAGE = (
    "OAuth2 (XOAUTH2) sends a bearer token, which needs TLS: choose STARTTLS "
    "under Security (port 587 with STARTTLS for Microsoft 365 and Google)."
)
_TENANT_ID = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
SECRET_MAX_LENGTH = 1024
KEY_MAX_LENGTH = 16 * 1024


def validate_tenant_id(value: str) -> str:
    """A Microsoft Entra directory (tenant) ID: a GUID or a verified domain."""
    tenant = value.strip()
    if not tenant:
        raise ValueError(
            "Tenant ID is required for Microsoft: enter the Directory (tenant) ID "
            "from the app's Overview page in the Entra admin center, e.g. "
            "72f988bf-86f1-41af-91ab-2d7cd011db47."
        )
    if not _TENANT_ID.match(tenant):
        raise ValueError(
            "Tenant ID must be the Directory (tenant) ID, a GUID such as "
            "72f988bf-86f1-41af-91ab-2d7cd011db47, or a domain such as "
            "contoso.onmicrosoft.com."
        )
    return tenant.lower()


def validate_token_url(value: str, *, trusted: bool = False) -> str:
    """A custom provider's token endpoint: https:// (http:// only when the operator
    allows it), a host that passes the network policy, no credentials in it."""
    url = value.strip()
    if not url:
        raise ValueError(
            "Token URL is required for a custom provider: enter the provider's "
            "OAuth2 token endpoint, e.g. https://auth.example.com/oauth2/token."
        )
    if any(ch.isspace() for ch in url) or has_control_characters(url):
        raise ValueError("Token URL must not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as problem:
        raise ValueError(f"Token URL is not a valid URL: {problem}.") from None
    allow_http = bool(getattr(settings, "SMTP_OAUTH2_ALLOW_HTTP", False))
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme.lower() not in schemes:
        if allow_http:
            raise ValueError("Token URL must start with https:// or http://.")
        raise ValueError(
            "Token URL must start with https:// (the client secret travels in the "
            "request). The operator can allow http:// with SMTP_OAUTH2_ALLOW_HTTP."
        )
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "Token URL must not contain a user name or password: put the client ID "
            "and secret in their own fields."
        )
    if parts.fragment:
        raise ValueError("Token URL must not contain a #fragment.")
    if port == 0:
        raise ValueError("Token URL has port 0: remove it or use the real port.")
    try:
        host = validate_host(parts.hostname or "")
    except ValueError as problem:
        raise ValueError(str(problem).replace("Host", "Token URL's host", 1)) from None
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None and not trusted and not address_permitted(literal):
        raise ValueError(
            "Token URL's host is an address that partner and organization "
            "configurations may not reach: use the provider's public name; if a "
            "private address is intended, the operator must allow its network "
            "(SMTP_ALLOWED_NETWORKS)."
        )
    return url


def validate_service_account_key(text: str) -> str:
    """A Google service account's JSON key, with an RSA private key; returns it."""
    if len(text) > KEY_MAX_LENGTH:
        raise ValueError(
            "Service account key is too long: paste the JSON key file of the "
            "service account (a few KiB)."
        )
    try:
        key = json.loads(text)
    except ValueError:
        raise ValueError(
            "Service account key must be the JSON key file of the service account "
            "(IAM > Service accounts > Keys > Add key > JSON), pasted whole."
        ) from None
    if not isinstance(key, dict) or key.get("type") != "service_account":
        raise ValueError(
            'Service account key must be a service account\'s JSON key ("type": '
            '"service_account"); an OAuth client file does not work here.'
        )
    email = key.get("client_email")
    if not isinstance(email, str) or "@" not in email:
        raise ValueError(
            "Service account key has no client_email: download a new JSON key."
        )
    try:
        private = load_pem_private_key(str(key.get("private_key", "")).encode(), None)
    except (ValueError, TypeError):
        raise ValueError(
            "Service account key's private_key is not a readable unencrypted PEM "
            "key: download a new JSON key."
        ) from None
    if not isinstance(private, rsa.RSAPrivateKey):
        raise ValueError(
            "Service account key's private_key must be an RSA key (Google signs "
            "with RS256): download a new JSON key."
        )
    return text


def _one_value(
    name: str, label: str, value: str, errors: dict[str, list[str]], *, limit: int
) -> str:
    """A one-line value without control characters or spaces inside."""
    text = (value or "").strip()
    if validate_no_controls(name, label, text, errors):
        return text
    if any(ch.isspace() for ch in text):
        errors.setdefault(name, []).append(f"{label} must not contain spaces.")
    if len(text) > limit:
        errors.setdefault(name, []).append(
            f"{label} must be at most {limit} characters."
        )
    return text


def _oauth2_changes(
    data: SmtpInput,
    current: SmtpSettingsFields,
    host: str | None,
    security: Security | None,
    values: dict,
) -> list[str]:
    """What differs from the endpoint, client and server the stored secrets were
    entered for: a bearer token goes to the SMTP server, a secret to the token
    endpoint."""
    changes = _server_changes(data, current, host, security)
    if current.auth_method != AuthMethod.OAUTH2:
        changes.append("Authentication changed to OAuth2")
    named = (
        ("oauth2_provider", "Provider"),
        ("oauth2_tenant_id", "Tenant ID"),
        ("oauth2_client_id", "Client ID"),
        ("oauth2_token_url", "Token URL"),
    )
    for name, label in named:
        if values[name] != getattr(current, name):
            changes.append(f"{label} changed")
    return changes


def _oauth2_validate(
    data: SmtpInput,
    current: SmtpSettingsFields | None,
    host: str | None,
    security: Security | None,
    username: str,
    errors: dict[str, list[str]],
) -> dict:
    """The OAuth2 settings to store, and what happens to the stored secrets."""

    def error(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    if not username and "username" not in errors:
        error(
            "username",
            "Username is required with OAuth2: enter the mailbox to send as (for "
            "Google, the user the service account acts for), e.g. "
            "alerts@example.com.",
        )
    provider = (data.oauth2_provider or "").strip()
    if provider not in OAuth2Provider.values:
        error(
            "oauth2_provider",
            "Provider is required with OAuth2: choose microsoft, google or custom.",
        )
        provider = ""
    values = {
        "oauth2_provider": provider,
        "oauth2_tenant_id": "",
        "oauth2_client_id": "",
        "oauth2_scope": "",
        "oauth2_token_url": "",
        "oauth2_client_secret_expires_on": None,
    }
    scope = (data.oauth2_scope or "").strip()
    if not validate_no_controls("oauth2_scope", "Scope", scope, errors):
        validate_one_line("oauth2_scope", "Scope", scope, errors)
        if len(scope) > 500:
            error("oauth2_scope", "Scope must be at most 500 characters.")
    values["oauth2_scope"] = scope
    uses_secret = provider in (OAuth2Provider.MICROSOFT, OAuth2Provider.CUSTOM)
    if provider == OAuth2Provider.MICROSOFT:
        try:
            values["oauth2_tenant_id"] = validate_tenant_id(data.oauth2_tenant_id)
        except ValueError as problem:
            error("oauth2_tenant_id", str(problem))
    if provider == OAuth2Provider.CUSTOM:
        try:
            values["oauth2_token_url"] = validate_token_url(data.oauth2_token_url)
        except ValueError as problem:
            error("oauth2_token_url", str(problem))
    if uses_secret:
        client_id = _one_value(
            "oauth2_client_id", "Client ID", data.oauth2_client_id, errors, limit=255
        )
        if not client_id and "oauth2_client_id" not in errors:
            error(
                "oauth2_client_id",
                "Client ID is required: enter the Application (client) ID of the "
                "app registered with the provider.",
            )
        values["oauth2_client_id"] = client_id
        values["oauth2_client_secret_expires_on"] = data.oauth2_client_secret_expires_on

    # The secrets: set, keep the stored ones, or clear them.
    secret = data.oauth2_client_secret or None
    key = data.oauth2_service_account_key or None
    changes = (
        _oauth2_changes(data, current, host, security, values)
        if current is not None
        else []
    )
    secret_action = key_action = PasswordAction.CLEAR
    if uses_secret:
        if secret:
            secret_action = PasswordAction.SET
            if len(secret) > SECRET_MAX_LENGTH or "\n" in secret or "\r" in secret:
                error(
                    "oauth2_client_secret",
                    f"Client secret must be one line of at most {SECRET_MAX_LENGTH} "
                    "characters: copy the secret's Value (not its ID).",
                )
        elif current is not None and current.oauth2_client_secret_set:
            if changes:
                error(
                    "oauth2_client_secret",
                    f"{'; '.join(changes)}: enter the client secret again. A stored "
                    "secret is only used with the provider, client and server it "
                    "was entered for.",
                )
            else:
                secret_action = PasswordAction.KEEP
        if secret_action == PasswordAction.CLEAR and "oauth2_client_secret" not in (
            errors
        ):
            error(
                "oauth2_client_secret",
                "Client secret is required: enter the Value of a client secret of "
                "the app (Certificates & secrets).",
            )
    elif provider == OAuth2Provider.GOOGLE:
        if key:
            try:
                validate_service_account_key(key)
            except ValueError as problem:
                error("oauth2_service_account_key", str(problem))
            key_action = PasswordAction.SET
        elif current is not None and current.oauth2_service_account_key_set:
            if changes:
                error(
                    "oauth2_service_account_key",
                    f"{'; '.join(changes)}: paste the service account key again. "
                    "A stored key is only used with the mailbox and server it was "
                    "entered for.",
                )
            else:
                key_action = PasswordAction.KEEP
        else:
            error(
                "oauth2_service_account_key",
                "Service account key is required for Google: paste the service "
                "account's JSON key.",
            )
    if secret and not uses_secret:
        error(
            "oauth2_client_secret",
            "Leave Client secret empty: Google authenticates with the service "
            "account key.",
        )
    if key and provider != OAuth2Provider.GOOGLE:
        error(
            "oauth2_service_account_key",
            "Leave Service account key empty: only Google uses one.",
        )
    return {
        **values,
        "client_secret_action": secret_action,
        "new_client_secret": secret if secret_action == PasswordAction.SET else None,
        "key_action": key_action,
        "new_key": key if key_action == PasswordAction.SET else None,
    }


CONTROLLER_OAUTH2 = "FW_EVENT_SMTP_SERVER_OAUTH2_"


def controller_oauth2_problem(values: ControllerSmtp, *, security: Security) -> str:
    """What is wrong with the controller's authentication settings, naming the
    variable to fix; empty when nothing is."""
    if values.auth_method != AuthMethod.OAUTH2:
        return ""
    if security == Security.NONE:
        return (
            "FW_EVENT_SMTP_SERVER_USE_TLS is false, but OAuth2 sends a bearer token, "
            "which needs TLS."
        )
    if not values.username:
        return (
            "FW_EVENT_SMTP_SERVER_USERNAME must be the mailbox to send as when "
            "FW_EVENT_SMTP_SERVER_AUTH_METHOD is oauth2."
        )
    provider = values.oauth2_provider
    if provider not in OAuth2Provider.values:
        return f"{CONTROLLER_OAUTH2}PROVIDER must be microsoft, google or custom."
    try:
        if provider == OAuth2Provider.MICROSOFT:
            validate_tenant_id(values.oauth2_tenant_id)
        if provider == OAuth2Provider.CUSTOM:
            validate_token_url(values.oauth2_token_url, trusted=True)
        if provider == OAuth2Provider.GOOGLE:
            if not values.oauth2_service_account_key:
                return (
                    f"{CONTROLLER_OAUTH2}SERVICE_ACCOUNT_KEY or "
                    f"{CONTROLLER_OAUTH2}SERVICE_ACCOUNT_KEY_FILE is required for "
                    "Google."
                )
            validate_service_account_key(values.oauth2_service_account_key)
    except ValueError as problem:
        message = str(problem)
        for label, name in (
            ("Tenant ID", "TENANT_ID"),
            ("Token URL", "TOKEN_URL"),
            ("Service account key", "SERVICE_ACCOUNT_KEY"),
        ):
            message = message.replace(label, CONTROLLER_OAUTH2 + name)
        return message
    if provider != OAuth2Provider.GOOGLE:
        if not values.oauth2_client_id:
            return f"{CONTROLLER_OAUTH2}CLIENT_ID is required for {provider}."
        if not values.oauth2_client_secret:
            return f"{CONTROLLER_OAUTH2}CLIENT_SECRET is required for {provider}."
    return ""


CLIENT_CERT = "Client certificate"
CLIENT_KEY = "Client key"


def validate_client_certificate(cert: str, key: str) -> None:
    """A certificate and key pair that can be used now; ``ValueError`` naming the
    part that cannot (for the controller's environment variables)."""
    try:
        info = certificate_info(cert)
    except CertificateError as problem:
        raise ValueError(f"{CLIENT_CERT} {problem}") from None
    if info.expired():
        raise ValueError(_expired(info.not_after))
    try:
        check_key(key, cert_pem=cert)
    except CertificateError as problem:
        raise ValueError(f"{CLIENT_KEY} {problem}") from None


def _expired(not_after) -> str:
    return (
        f"{CLIENT_CERT} expired on {not_after:%Y-%m-%d %H:%M} UTC: upload a renewed "
        "certificate (and its key)."
    )


def _client_certificate(
    data: SmtpInput,
    current: SmtpSettingsFields | None,
    host: str | None,
    security: Security | None,
    errors: dict[str, list[str]],
) -> tuple[PasswordAction, str | None, str | None]:
    """What happens to the client certificate and key; adds messages to ``errors``.

    Like the password, a stored key is only presented to the server it was
    entered for: a changed host or port, or weaker checks of the server's
    identity, ask for it again.
    """

    def error(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    stored_cert = current.client_cert if current is not None else ""
    stored_key = bool(current is not None and current.client_key)
    cert = data.client_cert.strip() if data.client_cert is not None else None
    key = (data.client_key or "").strip() or None
    if cert and cert == stored_cert and key is None:
        cert = None  # the stored certificate, sent back unchanged
    if cert == "":
        if key:
            error(
                "client_key",
                f"Leave {CLIENT_KEY} empty when removing the client certificate.",
            )
        return PasswordAction.CLEAR, None, None
    if cert is None and key is None:
        if not stored_cert:
            return PasswordAction.CLEAR, None, None
        if security == Security.NONE:
            error(
                "client_cert",
                f"A {CLIENT_CERT.lower()} is presented only over TLS: choose TLS "
                "under Security, or remove the client certificate.",
            )
        elif current is not None and stored_key:
            changes = [
                change
                for change in _server_changes(data, current, host, security)
                if change != "Username changed"
            ]
            if changes:
                error(
                    "client_key",
                    f"{'; '.join(changes)}: enter the {CLIENT_KEY.lower()} again. A "
                    "stored key is only used with the server it was entered for.",
                )
        return PasswordAction.KEEP, None, None
    # A new certificate, a new key, or both.
    cert_text = cert if cert is not None else stored_cert
    if not cert_text:
        error(
            "client_cert",
            f"Paste the {CLIENT_CERT.lower()} that goes with this key, or leave "
            f"{CLIENT_KEY} empty.",
        )
        return PasswordAction.KEEP, None, None
    try:
        info = certificate_info(cert_text)
    except CertificateError as problem:
        error("client_cert", f"{CLIENT_CERT} {problem}")
        return PasswordAction.KEEP, None, None
    if info.expired():
        error("client_cert", _expired(info.not_after))
    if security == Security.NONE:
        error(
            "client_cert",
            f"A {CLIENT_CERT.lower()} is presented only over TLS: choose TLS under "
            f"Security, or leave {CLIENT_CERT} empty.",
        )
    if key is None:
        if cert_text != stored_cert or not stored_key:
            error(
                "client_key",
                f"Enter the {CLIENT_KEY.lower()} of this certificate (PEM): a "
                "certificate cannot be used without its key.",
            )
        return PasswordAction.KEEP, None, None
    try:
        check_key(key, cert_pem=cert_text)
    except CertificateError as problem:
        error("client_key", f"{CLIENT_KEY} {problem}")
    return PasswordAction.SET, cert_text, key
