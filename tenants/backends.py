"""Authentication backend: email login, and the tenant loaded with the user."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.contrib.auth.backends import ModelBackend

from core.prepared import PreparedQuery
from tenants.models import User

# What is read with a user: its tenant (every console page needs it).
USER_TENANT = ("partner", "organization__partner")

# Read on every authenticated request: compiled once, not per request.
_SESSION_USER = PreparedQuery(
    lambda user_id: User._default_manager.select_related(*USER_TENANT).filter(
        pk=user_id
    ),
    in_server=True,
)

# The user id a session names and the user read with it (``tenants.sessions``),
# while Django authenticates the session's request.
_SESSION_READ: ContextVar[tuple[int, User | None] | None] = ContextVar(
    "session_user_read", default=None
)


@contextmanager
def session_user_read(read: tuple[int, User | None] | None) -> Iterator[None]:
    """Within the block, ``EmailBackend.get_user`` of that user id answers with
    the user read with the session instead of reading it again."""
    token = _SESSION_READ.set(read)
    try:
        yield
    finally:
        _SESSION_READ.reset(token)


class EmailBackend(ModelBackend):
    """Django's model backend, loading the user's tenant in the same query.

    Every console page needs the partner or organization of the user, so the
    session user is read with them rather than one query each. The row is read
    on every request (nothing is cached): a changed password, a deactivated
    user, a new tenant or role take effect on the next request. A request's
    session brings its user along (``tenants.sessions``): when it is the user
    asked for, it is not read a second time.
    """

    def get_user(self, user_id):
        try:
            user_id = int(user_id)
        except (TypeError, ValueError):
            return None
        read = _SESSION_READ.get()
        if read is not None and read[0] == user_id:
            user = read[1]
        else:
            found = _SESSION_USER.run(user_id)
            user = found[0] if found else None
        return user if user is not None and self.user_can_authenticate(user) else None
