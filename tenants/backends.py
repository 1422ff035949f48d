"""Authentication backend: email login, and the tenant loaded with the user."""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend

from tenants.models import User


class EmailBackend(ModelBackend):
    """Django's model backend, loading the user's tenant in the same query.

    Every console page needs the partner or organization of the user, so the
    session user is read with them rather than one query each.
    """

    def get_user(self, user_id):
        user = (
            User._default_manager.select_related("partner", "organization__partner")
            .filter(pk=user_id)
            .first()
        )
        return user if user is not None and self.user_can_authenticate(user) else None
