"""Error pages: JSON for API paths, HTML for console pages."""

from __future__ import annotations

from collections.abc import Callable

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import Resolver404

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


class NotFoundPageMiddleware:
    """A view's 404 (a page of the other console, of another tenant, of a feature
    that is off, an object that is not the user's) is the app's own page, with
    DEBUG too: Django's debug page would list every URL of both consoles. An
    address that matches no URL keeps Django's handling."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(
        self, request: HttpRequest, exception: Exception
    ) -> HttpResponse | None:
        if isinstance(exception, Http404) and not isinstance(exception, Resolver404):
            return not_found(request, exception)
        return None
