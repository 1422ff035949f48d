"""The one module that reads the process environment (through django-environ).

Settings read their values here at start-up; the few values that must be read at
use time (the controller-level SMTP defaults) have functions here too, so that no
other module touches ``os.environ``.
"""

from __future__ import annotations

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()

# A local ``.env`` file is a convenience for development; variables already set in
# the real environment always win over it.
_ENV_FILE = BASE_DIR / ".env"
if _ENV_FILE.is_file():
    environ.Env.read_env(str(_ENV_FILE), overwrite=False)

# Documented names of the controller-level SMTP defaults (event-framework
# deployment). Read at use time by ``controller_smtp_env``.
CONTROLLER_SMTP_VARIABLES = (
    "FW_EVENT_SMTP_SERVER_ADDR",
    "FW_EVENT_SMTP_SERVER_PORT",
    "FW_EVENT_SMTP_SERVER_USERNAME",
    "FW_EVENT_SMTP_SERVER_PASSWORD",
    "FW_EVENT_SMTP_SERVER_USE_TLS",
    "FW_EVENT_SMTP_SERVER_USE_INSECURE",
)


def required_secret(name: str, *, debug: bool, dev_default: str) -> str:
    """Return a secret variable; outside DEBUG a missing one stops start-up."""
    value = env.str(name, default="")
    if value:
        return value
    if debug:
        return dev_default
    raise ImproperlyConfigured(
        f"{name} is not set. It is required when DEBUG is false: set {name} in the "
        f"environment (see .env.example)."
    )


def controller_smtp_env() -> dict[str, str]:
    """The controller-level SMTP variables that are set, read now (not at import)."""
    return {
        name: os.environ[name]
        for name in CONTROLLER_SMTP_VARIABLES
        if os.environ.get(name, "") != ""
    }


def account_creation_strategy() -> str:
    """``ACCOUNT_CREATION_STRATEGY`` at use time: ``AUTO`` (default) or ``VERIFY``."""
    return env.str("ACCOUNT_CREATION_STRATEGY", default="AUTO").strip().upper()
