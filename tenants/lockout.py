"""What a locked-out login gets (django-axes): JSON for the API, a page otherwise."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from opsconsole.paths import API_PATH_PREFIXES

STATUS = 429


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
