"""Error pages: JSON for API paths, HTML for console pages."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from core.paths import API_PATH_PREFIXES


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith(API_PATH_PREFIXES)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"error": "Not found."}, status=404)
    return render(request, "404.html", status=404)


def forbidden(request: HttpRequest, exception: Exception) -> HttpResponse:
    message = str(exception) or "You may not do this."
    if _wants_json(request):
        return JsonResponse({"error": message}, status=403)
    return render(request, "403.html", {"message": message}, status=403)


def server_error(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(
            {"error": "Internal error; it has been logged. Try again later."},
            status=500,
        )
    return render(request, "500.html", status=500)
