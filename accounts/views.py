"""Pages that span tenants and smtp: the Ops Console's organizations, and the
request for a password reset link."""

from __future__ import annotations

from axes.helpers import get_client_ip_address
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.selectors import (
    organization_list_with_smtp,
    organization_smtp,
    partner_smtp_inherited,
)
from accounts.services import organization_create, password_reset_request
from smtp.selectors import smtp_config_get
from tenants.access import ops_page
from tenants.forms import OrganizationCreateForm, PasswordResetRequestForm
from tenants.selectors import organization_get
from tenants.services import AccountStrategy, account_strategy


@ops_page
def ops_organization_list(request: HttpRequest) -> HttpResponse:
    organizations = organization_list_with_smtp(partner=request.scope.partner)
    partner_smtp = smtp_config_get(partner=request.scope.partner)
    return render(
        request,
        "ops/organizations.html",
        {
            "organizations": organizations,
            "partner_smtp": partner_smtp,
            "inherited": partner_smtp_inherited(partner=request.scope.partner),
            "nav": "organizations",
        },
    )


@ops_page
def ops_organization_detail(request: HttpRequest, organization_id: int) -> HttpResponse:
    organization = organization_get(
        partner=request.scope.partner, organization_id=organization_id
    )
    if organization is None:
        raise Http404("No such organization.")
    return render(
        request,
        "ops/organization_detail.html",
        {
            "organization": organization,
            "smtp": organization_smtp(organization=organization),
            "nav": "organizations",
        },
    )


@ops_page
def ops_organization_create(request: HttpRequest) -> HttpResponse:
    strategy = account_strategy()
    if request.method == "POST":
        form = OrganizationCreateForm(request.POST)
        if form.is_valid():
            try:
                created = organization_create(
                    partner=request.scope.partner,
                    actor=request.user,
                    **form.cleaned_data,
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                if created.password_pending:
                    messages.success(
                        request,
                        f"Organization created. {created.admin.email} was sent an "
                        "email to set their password.",
                    )
                else:
                    messages.success(
                        request,
                        f"Organization created. {created.admin.email} can log in "
                        "with the password you set.",
                    )
                return redirect("ops:organization", created.organization.pk)
    else:
        form = OrganizationCreateForm()
    return render(
        request,
        "ops/organization_new.html",
        {
            "form": form,
            "nav": "organizations",
            "verify": strategy == AccountStrategy.VERIFY,
        },
    )


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
