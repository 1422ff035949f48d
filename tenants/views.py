"""Pages of the tenants app: login, landing, and the consoles' own pages."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy

from audit.models import Category
from audit.services import audit_event_record
from tenants.access import ops_page, web_page
from tenants.forms import EmailAuthenticationForm
from tenants.models import Console


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


@web_page
def web_home(request: HttpRequest) -> HttpResponse:
    return redirect("web:settings")


@web_page
def web_settings(request: HttpRequest) -> HttpResponse:
    return render(request, "console/settings.html", {"nav": "settings"})


class PasswordLinkView(auth_views.PasswordResetConfirmView):
    """A one-time link (account setup or password reset): choose a password."""

    template_name = "registration/password_set.html"
    success_url = reverse_lazy("login")
    purpose = "reset"

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "purpose": self.purpose}

    def form_valid(self, form):
        response = super().form_valid(form)
        user = form.user
        audit_event_record(
            category=Category.AUDIT,
            type="user.password_set",
            summary=f"{user.email} set a password from a one-time link",
            actor=user.email,
            partner_id=(
                user.partner_id
                or (user.organization.partner_id if user.organization_id else None)
            ),
            organization_id=user.organization_id,
            detail={"purpose": self.purpose},
        )
        messages.success(self.request, "Password set. Log in with your new password.")
        return response


class AccountSetupView(PasswordLinkView):
    purpose = "setup"
