"""Pages of the tenants app: login, landing, and the consoles' own pages."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from tenants.access import ops_page, web_page
from tenants.forms import EmailAuthenticationForm
from tenants.models import Console
from tenants.selectors import organization_get, organization_list


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    form_class = EmailAuthenticationForm
    redirect_authenticated_user = True


def home(request: HttpRequest) -> HttpResponse:
    """Send users to their console: Ops (partner), Web (organization) or admin."""
    user = request.user
    if not user.is_authenticated:
        return redirect("login")
    if user.console == Console.OPS:
        return redirect("ops:home")
    if user.console == Console.WEB:
        return redirect("web:home")
    if user.is_staff:
        return redirect("admin:index")
    return render(request, "no_console.html", status=403)


@ops_page
def ops_home(request: HttpRequest) -> HttpResponse:
    return redirect("ops:smtp")


@ops_page
def ops_organization_list(request: HttpRequest) -> HttpResponse:
    organizations = organization_list(partner=request.partner)
    return render(
        request,
        "ops/organizations.html",
        {"organizations": organizations, "nav": "organizations"},
    )


@ops_page
def ops_organization_detail(request: HttpRequest, organization_id: int) -> HttpResponse:
    organization = organization_get(
        partner=request.partner, organization_id=organization_id
    )
    if organization is None:
        raise Http404("No such organization.")
    return render(
        request,
        "ops/organization_detail.html",
        {"organization": organization, "nav": "organizations"},
    )


@web_page
def web_home(request: HttpRequest) -> HttpResponse:
    return redirect("web:settings")


@web_page
def web_settings(request: HttpRequest) -> HttpResponse:
    return render(request, "console/settings.html", {"nav": "settings"})
