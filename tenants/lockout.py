"""Login lockout (django-axes): whose failures count together, and the answer.

Failures are counted per normalised email address, the way the login matches it
(``User.objects.get_by_natural_key`` is case-insensitive), so that typing the
address in another case does not start a fresh count.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from core.paths import API_PATH_PREFIXES
from tenants.models import email_key

STATUS = 429


def lockout_username(request: HttpRequest | None, credentials: dict | None) -> str:
    """``AXES_USERNAME_CALLABLE``: the address a login attempt is counted under.

    django-axes passes the credentials given to ``authenticate()`` (the HTML and
    the JSON login both call it with ``username``), or, after a successful login,
    the user's stored email; without credentials it reads the posted form.
    """
    if credentials:
        typed = credentials.get(settings.AXES_USERNAME_FORM_FIELD)
    else:
        data = getattr(request, "POST", None) or {}
        typed = data.get(settings.AXES_USERNAME_FORM_FIELD)
    return email_key(typed if isinstance(typed, str) else None)


def _minutes() -> int:
    return int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)


def lockout_response(
    request: HttpRequest, original_response=None, credentials=None
) -> HttpResponse:
    minutes = _minutes()
    message = (
        f"Too many failed logins for this account from your address: try again in "
        f"{minutes} minutes, or reset your password."
    )
    if request.path.startswith(API_PATH_PREFIXES):
        response = JsonResponse({"error": message}, status=STATUS)
    else:
        response = render(
            request, "registration/locked_out.html", {"message": message}, status=STATUS
        )
    response["Retry-After"] = str(minutes * 60)
    return response
