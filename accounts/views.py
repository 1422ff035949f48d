"""Pages that span tenants and smtp: the request for a password reset link."""

from __future__ import annotations

from axes.helpers import get_client_ip_address
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.services import password_reset_request
from tenants.forms import PasswordResetRequestForm


def password_reset(request: HttpRequest) -> HttpResponse:
    """Ask for a reset link; the answer never tells whether the address exists.

    Every valid request gets the same page, at the same cost: the view only counts
    the request (same queries for any address) and hands the address to the
    worker, which looks it up. Over a limit, the page is the same and no email
    goes out.
    """
    if request.method == "POST":
        form = PasswordResetRequestForm(request.POST)
        if form.is_valid():
            password_reset_request(
                email=form.cleaned_data["email"],
                client=get_client_ip_address(request) or "",
            )
            return render(request, "registration/password_reset_sent.html")
    else:
        form = PasswordResetRequestForm()
    return render(request, "registration/password_reset_form.html", {"form": form})
