"""The config GET's happy path without the framework: a reference point for
``bench/web_load.py --ceiling``. Only the benchmark's gunicorn serves it; the
console never does.

``/bench/ceiling/config`` answers a partner admin's GET from the same two round
trips to PostgreSQL as the API's config GET (the session with its user, then
the partner's configuration rows), with nothing of Django's request handling:
no middleware, no DRF, no ORM. It checks what the console's session read checks
(the session not expired, its data signed with the secret key, naming the
row's user with that user's current password hash, the user active, of a
partner) and answers 403 otherwise. Its JSON is the rows' columns, not the
API's answer (no layers in effect, no notices, the secrets left out), and it
sets none of the security middleware's headers.

What it costs, beside the API's config GET on the same server in the same run,
tells how much of that GET's cost is the framework's: the most that serving the
read outside Django could gain. Every other path goes to the console's
application.
"""

from __future__ import annotations

import hmac
import json
import threading
from datetime import UTC, datetime
from functools import lru_cache

import psycopg
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.core import signing
from django.db import connections
from django.utils.crypto import salted_hmac

from opsconsole.wsgi import application as console_application
from smtp.models import SmtpConfiguration
from smtp.selectors import SECRET_COLUMNS
from tenants.models import Session, User

CEILING_CONFIG_URL = "/bench/ceiling/config"

# Only table and column names from the models' metadata are formatted in.
_SESSION = (
    "SELECT s.session_data, u.id, u.password, u.is_active, u.partner_id"  # noqa: S608
    f" FROM {Session._meta.db_table} s JOIN {User._meta.db_table} u"
    " ON u.id = s.user_id WHERE s.session_key = %s AND s.expire_date > %s"
)
_SECRETS = {SmtpConfiguration._meta.get_field(name).column for name in SECRET_COLUMNS}
_COLUMNS = ", ".join(
    field.column
    for field in SmtpConfiguration._meta.concrete_fields
    if field.column not in _SECRETS
)
_ROWS = (
    f"SELECT {_COLUMNS} FROM {SmtpConfiguration._meta.db_table}"  # noqa: S608
    " WHERE partner_id = %s AND organization_id IS NULL"
)
_SESSION_SALT = "django.contrib.sessions.SessionStore"
_HASH_SALT = "django.contrib.auth.models.AbstractBaseUser.get_session_auth_hash"
_FORBIDDEN = ("403 Forbidden", [("Content-Type", "application/json")])

_local = threading.local()


def _connection() -> psycopg.Connection:
    """This thread's connection, made with the console's parameters (its
    timeouts included) but plain psycopg's cursors and loaders, its statements
    prepared in the server."""
    connection = getattr(_local, "connection", None)
    if connection is None or connection.closed:
        params = connections["default"].get_connection_params()
        for djangos in ("cursor_factory", "context"):
            params.pop(djangos, None)
        params["prepare_threshold"] = 0
        connection = psycopg.connect(**params, autocommit=True)
        _local.connection = connection
    return connection


@lru_cache(maxsize=2048)
def _session_data(text: str) -> dict | None:
    """A session text's data, if signed with the secret key (checked once per
    text, as the console's session store does)."""
    try:
        return signing.loads(
            text, salt=_SESSION_SALT, serializer=signing.JSONSerializer
        )
    except signing.BadSignature:
        return None


def _cookie(environ: dict, name: str) -> str:
    for part in environ.get("HTTP_COOKIE", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""


def _partner_of(environ: dict, connection: psycopg.Connection) -> int | None:
    """The partner whose admin's session the request carries; ``None`` for
    anything else."""
    key = _cookie(environ, settings.SESSION_COOKIE_NAME)
    if not key:
        return None
    row = connection.execute(_SESSION, (key, datetime.now(UTC))).fetchone()
    if row is None:
        return None
    text, user_id, password, active, partner_id = row
    data = _session_data(text)
    if (
        data is None
        or not active
        or str(data.get(SESSION_KEY)) != str(user_id)
        or data.get(BACKEND_SESSION_KEY) not in settings.AUTHENTICATION_BACKENDS
    ):
        return None
    expected = salted_hmac(_HASH_SALT, password, algorithm="sha256").hexdigest()
    if not hmac.compare_digest(str(data.get(HASH_SESSION_KEY, "")), expected):
        return None
    return partner_id


def application(environ: dict, start_response):
    if environ["PATH_INFO"] != CEILING_CONFIG_URL:
        return console_application(environ, start_response)
    connection = _connection()
    partner_id = _partner_of(environ, connection)
    if partner_id is None:
        start_response(*_FORBIDDEN)
        return [b"{}"]
    cursor = connection.execute(_ROWS, (partner_id,))
    names = [column.name for column in cursor.description]
    rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    body = json.dumps({"smtp_config": rows}, default=str).encode()
    start_response(
        "200 OK",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Vary", "Cookie"),
        ],
    )
    return [body]
