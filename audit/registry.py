"""The event types the apps record, registered by each app in its ``ready()``.

The audit pages offer these in their type filter. The app that records a type
declares it, so the audit app names none of them; a list read from the events
would scan the whole table and be empty on a new installation.
"""

from __future__ import annotations

import re

from django.core.exceptions import ImproperlyConfigured

from audit.models import AuditEvent, Category

# Dotted lower-case words, e.g. email.sent or smtp_config.health.failing.
_NAME = re.compile(r"^[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+$")


class EventTypes:
    """Event types by name, each with the one category it is recorded in."""

    def __init__(self) -> None:
        self._categories: dict[str, Category] = {}

    def register(self, category: Category, *types: str) -> None:
        """Add ``types``; registering a type again in the same category is a no-op.

        Raises ``ImproperlyConfigured`` for a name the log cannot hold or one
        already registered in the other category.
        """
        category = Category(category)
        longest = AuditEvent._meta.get_field("type").max_length
        for name in types:
            if not _NAME.match(name) or len(name) > longest:
                raise ImproperlyConfigured(
                    f"Audit event type {name!r}: use dotted lower-case words of at "
                    f"most {longest} characters, e.g. email.sent."
                )
            known = self._categories.setdefault(name, category)
            if known != category:
                raise ImproperlyConfigured(
                    f"Audit event type {name!r} is registered as {known}; it cannot "
                    f"also be {category}."
                )

    def names(self) -> list[str]:
        """Every registered type, sorted (a stable order, whichever app came first)."""
        return sorted(self._categories)

    def category(self, name: str) -> Category | None:
        return self._categories.get(name)


event_types = EventTypes()


def register_event_types(category: Category, *types: str) -> None:
    """Declare event types an app records; call it from the app's ``ready()``."""
    event_types.register(category, *types)
