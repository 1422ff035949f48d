"""Authentication backend: email login, and the tenant loaded with the user."""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend

from core.prepared import PreparedQuery
from tenants.models import User

# Read on every authenticated request: compiled once, not per request.
_SESSION_USER = PreparedQuery(
    lambda user_id: User._default_manager.select_related(
        "partner", "organization__partner"
    ).filter(pk=user_id),
    in_server=True,
)


class EmailBackend(ModelBackend):
    """Django's model backend, loading the user's tenant in the same query.

    Every console page needs the partner or organization of the user, so the
    session user is read with them rather than one query each. The row is read
    on every request (nothing is cached): a changed password, a deactivated
    user, a new tenant or role take effect on the next request.
    """

    def get_user(self, user_id):
        try:
            user_id = int(user_id)
        except (TypeError, ValueError):
            return None
        found = _SESSION_USER.run(user_id)
        user = found[0] if found else None
        return user if user is not None and self.user_can_authenticate(user) else None
