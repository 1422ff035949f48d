"""Login sessions in the database, read together with their user in one query.

An authenticated request needs its session (whose it is, and the hash that shows
the password has not changed since the login), then that user with its tenant.
``SessionStore.load`` reads both at once: the session row joined to its user
(``Session.user``), the user's partner and organization, as one statement
prepared in PostgreSQL. ``SessionUserMiddleware`` hands that user to the
authentication backend, which reads it on its own otherwise.

Every request reads its session row and user: a logout, a changed password,
a deactivated user or a new tenant or role take effect on the next request.
What a process remembers is only that a session's signed text is genuine
under the keys in use (``SessionStore.decode``): a given text holds the same
data for as long as it exists.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.contrib import auth
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends import db
from django.core import signing
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import SimpleLazyObject

from core.prepared import PreparedQuery
from tenants.backends import USER_TENANT, session_user_read
from tenants.models import Session, User

# A key looked up by equality: the plan is the same for every session.
_SESSION_WITH_USER = PreparedQuery(
    lambda session_key, now: Session.objects.select_related(
        *(f"user__{related}" for related in USER_TENANT)
    ).filter(session_key=session_key, expire_date__gt=now),
    kinds=(str, datetime),
    in_server=True,
)


def _user_id(value: Any) -> int | None:
    """The user id a session's data names, if it is one."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@lru_cache(maxsize=2048)
def _verified_json(
    session_data: str, salt: str, secret: str, fallbacks: tuple[str, ...]
) -> str:
    """The data of a signed session text whose signature these keys verify, as
    JSON; raises as ``signing.loads`` does, and keeps nothing then.

    The same text with the same keys always holds the same data: a session's
    text changes only when its data does (a login, a write, a logout).
    """
    data = signing.loads(
        session_data,
        key=secret,
        fallback_keys=fallbacks,
        salt=salt,
        serializer=signing.JSONSerializer,
    )
    return json.dumps(data)


class SessionStore(db.SessionStore):
    """Django's database sessions, kept in ``tenants.Session`` with their user.

    After ``load``, ``user_read`` is the user id the session row names and
    that user as read with it (``None`` for a user that no longer exists), or
    ``None`` for a session without a user.
    """

    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        self.user_read: tuple[int, User | None] | None = None

    @classmethod
    def get_model_class(cls) -> type[Session]:
        return Session

    def load(self) -> dict[str, Any]:
        self.user_read = None
        if self.session_key is None:
            return {}
        found = _SESSION_WITH_USER.run(self.session_key, timezone.now())
        if not found:
            self._session_key = None
            return {}
        session = found[0]
        if session.user_id is not None:
            self.user_read = (session.user_id, session.user)
        return self.decode(session.session_data)

    def decode(self, session_data: str) -> dict[str, Any]:
        """Django's, checking the signature and decompressing a session's text
        once per process and key rather than on every request; each call gets
        data of its own."""
        if self.serializer is not signing.JSONSerializer:
            return super().decode(session_data)
        try:
            verified = _verified_json(
                session_data,
                self.key_salt,
                settings.SECRET_KEY,
                tuple(settings.SECRET_KEY_FALLBACKS),
            )
        except Exception:  # Django's decode says what was wrong, and answers {}
            return super().decode(session_data)
        return json.loads(verified)

    def create_model_instance(self, data: dict[str, Any]) -> Session:
        session = super().create_model_instance(data)
        session.user_id = _user_id(data.get(auth.SESSION_KEY))
        return session


def _session_user(request: HttpRequest) -> User | AnonymousUser:
    """Django's ``get_user`` for the request, given the user its session was
    read with (the backend checks it is the one the session data names)."""
    if not hasattr(request, "_cached_user"):
        session = request.session
        # Reads the session, and with it its user.
        session.get(auth.SESSION_KEY)
        with session_user_read(getattr(session, "user_read", None)):
            request._cached_user = auth.get_user(request)
    return request._cached_user


class SessionUserMiddleware(AuthenticationMiddleware):
    """``request.user`` as Django's authentication middleware sets it, from
    the user read with the session rather than by a query of its own."""

    def process_request(self, request: HttpRequest) -> None:
        super().process_request(request)
        request.user = SimpleLazyObject(lambda: _session_user(request))
