"""The one module that reads the process environment (through django-environ).

Settings read their values here at start-up; the few values that must be read at
use time (the controller-level SMTP defaults) have functions here too, so that no
other module touches ``os.environ``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from core.text import is_whole_number

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()

# A local ``.env`` file is a convenience for development; variables already set in
# the real environment always win over it.
_ENV_FILE = BASE_DIR / ".env"
if _ENV_FILE.is_file():
    environ.Env.read_env(str(_ENV_FILE), overwrite=False)

# Documented names of the controller-level SMTP defaults (event-framework
# deployment). Read at use time by ``controller_smtp``.
CONTROLLER_SMTP_VARIABLES = (
    "FW_EVENT_SMTP_SERVER_ADDR",
    "FW_EVENT_SMTP_SERVER_PORT",
    "FW_EVENT_SMTP_SERVER_USERNAME",
    "FW_EVENT_SMTP_SERVER_PASSWORD",
    "FW_EVENT_SMTP_SERVER_USE_TLS",
    "FW_EVENT_SMTP_SERVER_USE_INSECURE",
    "FW_EVENT_SMTP_SERVER_AUTH_METHOD",
    "FW_EVENT_SMTP_SERVER_OAUTH2_PROVIDER",
    "FW_EVENT_SMTP_SERVER_OAUTH2_TENANT_ID",
    "FW_EVENT_SMTP_SERVER_OAUTH2_CLIENT_ID",
    "FW_EVENT_SMTP_SERVER_OAUTH2_CLIENT_SECRET",
    "FW_EVENT_SMTP_SERVER_OAUTH2_SCOPE",
    "FW_EVENT_SMTP_SERVER_OAUTH2_TOKEN_URL",
    "FW_EVENT_SMTP_SERVER_OAUTH2_SERVICE_ACCOUNT_KEY",
    "FW_EVENT_SMTP_SERVER_OAUTH2_SERVICE_ACCOUNT_KEY_FILE",
    "FW_EVENT_SMTP_SERVER_OAUTH2_CLIENT_SECRET_EXPIRES_ON",
    "FW_EVENT_SMTP_SERVER_CLIENT_CERT",
    "FW_EVENT_SMTP_SERVER_CLIENT_KEY",
    # The sender identity of the controller level (all optional).
    "FW_EVENT_SMTP_SERVER_SENDER_NAME",
    "FW_EVENT_SMTP_SERVER_REPLY_TO",
    "FW_EVENT_SMTP_SERVER_BOUNCE_ADDRESS",
    # Delivery limits of the controller level (empty: SMTP_DEFAULT_*).
    "FW_EVENT_SMTP_SERVER_MESSAGES_PER_MINUTE",
    "FW_EVENT_SMTP_SERVER_MAX_CONNECTIONS",
)
AUTH_METHODS = ("password", "oauth2", "certificate", "none")


# The placeholders of .env.example and deploy/kubernetes/secret.example.yaml: a
# deployment that kept one would encrypt and sign with a published key.
PLACEHOLDER_SECRETS = frozenset(
    {
        "change-me-to-a-long-random-string",
        "FAKE-secret-key-replace-me",
        "FAKE-fernet-key-replace-me",
    }
)


def _refuse_placeholder(name: str, value: str) -> None:
    if value.strip() in PLACEHOLDER_SECRETS:
        raise ImproperlyConfigured(
            f"{name} is the example placeholder {value.strip()!r}, which is public. "
            f"Set {name} to a long random value of your own (see .env.example)."
        )


def required_secret(name: str, *, debug: bool, dev_default: str) -> str:
    """Return a secret variable; outside DEBUG a missing one or an example
    placeholder stops start-up."""
    value = env.str(name, default="")
    if value:
        if not debug:
            _refuse_placeholder(name, value)
        return value
    if debug:
        return dev_default
    raise ImproperlyConfigured(
        f"{name} is not set. It is required when DEBUG is false: set {name} in the "
        f"environment (see .env.example)."
    )


def required_secret_list(name: str, *, debug: bool, dev_default: str) -> list[str]:
    """A comma-separated secret list without blank entries, as ``required_secret``;
    outside DEBUG a list with no entry (``", "``) or with a placeholder stops
    start-up too."""
    raw = required_secret(name, debug=debug, dev_default=dev_default)
    values = [item.strip() for item in raw.split(",") if item.strip()]
    if debug:
        return values or [dev_default]
    if not values:
        raise ImproperlyConfigured(
            f"{name} holds no key, only commas or spaces. It is required when DEBUG "
            f"is false: set {name} to one key or more, comma-separated (see "
            ".env.example)."
        )
    for value in values:
        _refuse_placeholder(name, value)
    return values


@dataclass(frozen=True)
class ControllerSmtp:
    """``FW_EVENT_SMTP_SERVER_*`` as typed values (the host is checked by the SMTP
    app's own rules)."""

    host: str
    port: int
    use_tls: bool
    use_insecure: bool
    username: str
    password: str = field(repr=False)
    auth_method: str = "password"
    oauth2_provider: str = ""
    oauth2_tenant_id: str = ""
    oauth2_client_id: str = ""
    oauth2_client_secret: str = field(default="", repr=False)
    oauth2_scope: str = ""
    oauth2_token_url: str = ""
    oauth2_service_account_key: str = field(default="", repr=False)
    oauth2_client_secret_expires_on: date | None = None
    # Mutual TLS: PEM text (read from a file when the variable holds a path).
    client_cert: str = ""
    client_key: str = field(default="", repr=False)
    # Checked by the SMTP app's rules like a configuration's, naming the variable.
    sender_name: str = ""
    reply_to: str = ""
    bounce_address: str = ""
    # None: the deployment's default (SMTP_DEFAULT_*).
    messages_per_minute: int | None = None
    max_connections: int | None = None


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _flag(raw: dict[str, str], name: str, default: bool) -> bool:
    value = raw.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{name} must be true or false, not {value!r}.")


# Read from ``os.environ``'s own store where it has one (CPython on POSIX: names
# and values as bytes): a lookup there is a tenth of the instructions of
# ``os.environ.get``, which encodes the name and decodes the value in Python,
# and ``controller_smtp`` looks up every name on every read of the
# configuration in effect.
_ENVIRON_STORE = getattr(os.environ, "_data", None)
_STORE_KEYS = (
    tuple((name, os.environ.encodekey(name)) for name in CONTROLLER_SMTP_VARIABLES)
    if _ENVIRON_STORE is not None and hasattr(os.environ, "encodekey")
    else ()
)
# Values naming a file, read again at every use (a mounted secret can change).
_FILE_VARIABLES = (
    "FW_EVENT_SMTP_SERVER_CLIENT_CERT",
    "FW_EVENT_SMTP_SERVER_CLIENT_KEY",
    "FW_EVENT_SMTP_SERVER_OAUTH2_SERVICE_ACCOUNT_KEY_FILE",
)


def _controller_variables() -> tuple[tuple[str, str], ...]:
    """The ``FW_EVENT_SMTP_SERVER_*`` variables set to something, as they are
    now: (name, value) in ``CONTROLLER_SMTP_VARIABLES``' order."""
    if not _STORE_KEYS:
        return tuple(
            (name, value)
            for name in CONTROLLER_SMTP_VARIABLES
            if (value := os.environ.get(name, ""))
        )
    decode = os.environ.decodevalue
    found = []
    for name, key in _STORE_KEYS:
        value = _ENVIRON_STORE.get(key)
        if value:
            found.append((name, decode(value)))
    return tuple(found)


def controller_smtp() -> ControllerSmtp | None:
    """The controller-level SMTP defaults, read now (not at import): ``None`` when
    ``FW_EVENT_SMTP_SERVER_ADDR`` is not set; ``ValueError`` naming the variable
    that is malformed.

    The variables are read at every call; what they say is worked out once for
    the same values, unless one of them names a file (read at every call)."""
    variables = _controller_variables()
    names_a_file = any(
        name in _FILE_VARIABLES and not _holds_pem(value) for name, value in variables
    )
    if names_a_file:
        return _controller_smtp_from(variables)
    return _controller_smtp_cached(variables)


@lru_cache(maxsize=8)
def _controller_smtp_cached(
    variables: tuple[tuple[str, str], ...],
) -> ControllerSmtp | None:
    return _controller_smtp_from(variables)


def _controller_smtp_from(
    variables: tuple[tuple[str, str], ...],
) -> ControllerSmtp | None:
    raw = dict(variables)
    if "FW_EVENT_SMTP_SERVER_ADDR" not in raw:
        return None
    use_tls = _flag(raw, "FW_EVENT_SMTP_SERVER_USE_TLS", True)
    use_insecure = _flag(raw, "FW_EVENT_SMTP_SERVER_USE_INSECURE", False)
    port_text = raw.get("FW_EVENT_SMTP_SERVER_PORT", "587").strip()
    if not is_whole_number(port_text) or not 1 <= int(port_text) <= 65535:
        raise ValueError(
            f"FW_EVENT_SMTP_SERVER_PORT must be a port number, not {port_text!r}."
        )
    auth_method = raw.get("FW_EVENT_SMTP_SERVER_AUTH_METHOD", "password")
    auth_method = auth_method.strip().lower()
    if auth_method not in AUTH_METHODS:
        raise ValueError(
            "FW_EVENT_SMTP_SERVER_AUTH_METHOD must be one of "
            f"{', '.join(AUTH_METHODS)}, not {auth_method!r}."
        )
    prefix = "FW_EVENT_SMTP_SERVER_OAUTH2_"
    return ControllerSmtp(
        host=raw["FW_EVENT_SMTP_SERVER_ADDR"],
        port=int(port_text),
        use_tls=use_tls,
        use_insecure=use_insecure,
        username=raw.get("FW_EVENT_SMTP_SERVER_USERNAME", "").strip(),
        password=raw.get("FW_EVENT_SMTP_SERVER_PASSWORD", ""),
        auth_method=auth_method,
        oauth2_provider=raw.get(prefix + "PROVIDER", "").strip().lower(),
        oauth2_tenant_id=raw.get(prefix + "TENANT_ID", "").strip(),
        oauth2_client_id=raw.get(prefix + "CLIENT_ID", "").strip(),
        oauth2_client_secret=raw.get(prefix + "CLIENT_SECRET", "").strip(),
        oauth2_scope=raw.get(prefix + "SCOPE", "").strip(),
        oauth2_token_url=raw.get(prefix + "TOKEN_URL", "").strip(),
        oauth2_service_account_key=_service_account_key(raw),
        oauth2_client_secret_expires_on=_date(raw, prefix + "CLIENT_SECRET_EXPIRES_ON"),
        client_cert=_pem(raw, "FW_EVENT_SMTP_SERVER_CLIENT_CERT"),
        client_key=_pem(raw, "FW_EVENT_SMTP_SERVER_CLIENT_KEY"),
        sender_name=raw.get("FW_EVENT_SMTP_SERVER_SENDER_NAME", "").strip(),
        reply_to=raw.get("FW_EVENT_SMTP_SERVER_REPLY_TO", "").strip(),
        bounce_address=raw.get("FW_EVENT_SMTP_SERVER_BOUNCE_ADDRESS", "").strip(),
        messages_per_minute=_count(
            raw, "FW_EVENT_SMTP_SERVER_MESSAGES_PER_MINUTE", most=1_000_000
        ),
        max_connections=_count(raw, "FW_EVENT_SMTP_SERVER_MAX_CONNECTIONS", most=1000),
    )


def _count(raw: dict[str, str], name: str, *, most: int) -> int | None:
    """A whole number from 0 to ``most``; ``None`` when the variable is unset."""
    if name not in raw:
        return None
    text = raw[name].strip()
    if not is_whole_number(text) or int(text) > most:
        raise ValueError(
            f"{name} must be a whole number from 0 to {most}, not {text!r}."
        )
    return int(text)


def _service_account_key(raw: dict[str, str]) -> str:
    """The Google key, given inline or as a file (a mounted secret)."""
    inline = raw.get("FW_EVENT_SMTP_SERVER_OAUTH2_SERVICE_ACCOUNT_KEY", "")
    path = raw.get("FW_EVENT_SMTP_SERVER_OAUTH2_SERVICE_ACCOUNT_KEY_FILE", "").strip()
    if inline and path:
        raise ValueError(
            "Set FW_EVENT_SMTP_SERVER_OAUTH2_SERVICE_ACCOUNT_KEY or "
            "FW_EVENT_SMTP_SERVER_OAUTH2_SERVICE_ACCOUNT_KEY_FILE, not both."
        )
    if not path:
        return inline
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(
            "FW_EVENT_SMTP_SERVER_OAUTH2_SERVICE_ACCOUNT_KEY_FILE cannot be read "
            f"({type(error).__name__}): check the path and its permissions."
        ) from None


def _date(raw: dict[str, str], name: str) -> date | None:
    value = raw.get(name, "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{name} must be a date written YYYY-MM-DD, not {value!r}."
        ) from None


# A PEM file worth reading is far smaller than this.
_PEM_MAX_BYTES = 1024 * 1024


def _holds_pem(value: str) -> bool:
    """Whether a variable's value is PEM text itself, not the path of a file."""
    return value.strip().startswith("-----BEGIN")


def _pem(raw: dict[str, str], name: str) -> str:
    """The PEM text of variable ``name``: the value itself when it holds PEM
    ("-----BEGIN ..."), else the contents of the file it names."""
    value = raw.get(name, "").strip()
    if not value or _holds_pem(value):
        # Kubernetes and shells may keep "\n" escapes in one-line values.
        return value.replace("\\n", "\n")
    path = Path(value)
    try:
        if path.stat().st_size > _PEM_MAX_BYTES:
            raise ValueError(f"{name}: {value} is too large to be a PEM file.")
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or "not a PEM text file"
        raise ValueError(
            f"{name} must be PEM text or the path of a readable PEM file; "
            f"{value} cannot be read ({reason})."
        ) from None


def account_creation_strategy() -> str:
    """``ACCOUNT_CREATION_STRATEGY`` at use time: ``AUTO`` (default) or ``VERIFY``."""
    return env.str("ACCOUNT_CREATION_STRATEGY", default="AUTO").strip().upper()


@dataclass(frozen=True)
class DevStack:
    """``make run``'s ports, and the environment its processes start with."""

    web_port: int
    sink_port: int
    environment: dict[str, str] = field(repr=False)


def _dev_port(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip() or str(default)
    if not is_whole_number(text) or not 1 <= int(text) <= 65535:
        raise ValueError(
            f"{name} must be a port number (1-65535), not {text!r}: "
            f"for example {name}={default} make run."
        )
    return int(text)


def dev_stack() -> DevStack:
    """The development stack's settings: ``PORT`` and ``DEV_SMTP_PORT``, and
    defaults (under anything already set) that point the controller-level SMTP
    default at the sink and links in emails at the port served; ``ValueError``
    naming a malformed port variable."""
    web_port = _dev_port("PORT", 8000)
    sink_port = _dev_port("DEV_SMTP_PORT", 1025)
    defaults = {
        "DEBUG": "true",
        "SMTP_ALLOWED_NETWORKS": "127.0.0.0/8,::1",
        "PUBLIC_URL": f"http://127.0.0.1:{web_port}",
    }
    if os.environ.get("FW_EVENT_SMTP_SERVER_ADDR", "") == "":
        # No controller server of one's own: the sink is the controller default,
        # wherever DEV_SMTP_PORT puts it.
        defaults |= {
            "FW_EVENT_SMTP_SERVER_ADDR": "127.0.0.1",
            "FW_EVENT_SMTP_SERVER_PORT": str(sink_port),
            "FW_EVENT_SMTP_SERVER_USE_TLS": "false",
        }
    environment = dict(os.environ)
    for name, value in defaults.items():
        if environment.get(name, "") == "":
            environment[name] = value
    return DevStack(web_port=web_port, sink_port=sink_port, environment=environment)
