"""Template context for the console navigation."""

from __future__ import annotations

from django.http import HttpRequest


def console(request: HttpRequest) -> dict[str, object]:
    """Which console the user is in, and whether the SMTP settings entry is shown."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    organization = user.organization if user.organization_id else None
    return {
        "console": user.console,
        "tenant_partner": user.partner if user.partner_id else None,
        "tenant_organization": organization,
        "smtp_settings_visible": bool(
            organization and organization.smtp_configuration_enabled
        ),
    }
