"""How long the limits' periods last, from the settings (read at each use)."""

from __future__ import annotations

from django.conf import settings


def window() -> float:
    """Seconds of the window messages per minute are counted in."""
    return float(settings.SMTP_RATE_WINDOW_SECONDS)


def provisional() -> float:
    """Seconds from admission by which a message has surely reached the server
    or failed: a session's deadline for a reused session, and again for the
    fresh one it may fall back to."""
    return 2 * float(settings.SMTP_SESSION_DEADLINE)


def lease_seconds() -> float:
    """Seconds a connection slot lasts unless renewed."""
    return float(settings.SMTP_CONNECTION_LEASE_SECONDS)
