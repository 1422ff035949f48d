"""SMTP configuration pages: Ops Console (partner) and Web Console (organization)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from smtp.apis.refusals import refusal_answer
from smtp.delivery.certificates import certificate_info_or_none
from smtp.delivery.server import SmtpServer
from smtp.enums import (
    BRANDED_KINDS,
    AuthMethod,
    EmailKind,
    Level,
    OAuth2Provider,
    Security,
)
from smtp.forms import BrandingForm, EmailTextsForm, SenderDomainsForm, SmtpConfigForm
from smtp.identity import PLACEHOLDERS
from smtp.selectors import (
    EffectiveSmtp,
    email_attempts,
    email_branding,
    email_get,
    email_identity_get,
    email_logo_get,
    smtp_config_effective,
    smtp_config_get,
    smtp_config_get_and_effective,
    smtp_config_notices,
    smtp_failover_target,
)
from smtp.services import (
    BrandingInput,
    TestEmailRefused,
    email_branding_save,
    email_preview_render,
    email_preview_send,
    email_texts_save,
    sender_domains_save,
    smtp_config_delete,
    smtp_config_remove_client_certificate,
    smtp_config_remove_password,
    smtp_config_save,
    smtp_config_save_tested,
    smtp_test_email_request,
)
from smtp.validators import SmtpValidationError
from tenants.access import console_page, ops_page, web_page
from tenants.models import Console
from tenants.selectors import TenantScope


def _sender(settings: SmtpServer) -> str:
    origin = {"configured": "", "username": " (the username)", "default": " (default)"}
    return settings.sender_email + origin[settings.sender_origin]


def _authentication(settings: SmtpServer) -> str:
    if settings.uses_oauth2 and settings.oauth2 is not None:
        provider = OAuth2Provider(settings.oauth2.provider).label
        return f"OAuth2: {provider}"
    return AuthMethod(settings.auth_method).label


def _client_certificate(settings: SmtpServer) -> str:
    info = (
        certificate_info_or_none(settings.client_certificate.cert)
        if settings.client_certificate
        else None
    )
    if info is None:
        return "—"
    return f"{info.subject}, expires {info.not_after:%Y-%m-%d}"


def _limit(value: int) -> str:
    return str(value) if value else "no limit"


def _on(value: bool) -> str:
    return "on" if value else "off"


# (label, value of one level's settings), one row of the effective panel each.
PANEL_FIELDS: list[tuple[str, Callable[[SmtpServer], str]]] = [
    ("Host", lambda s: s.host),
    ("Port", lambda s: str(s.port)),
    ("TLS", lambda s: Security(s.security).label),
    (
        "Certificate verification",
        lambda s: "—" if not s.use_tls else ("skipped" if s.use_insecure else "on"),
    ),
    ("Authentication", _authentication),
    ("Username", lambda s: s.username or "—"),
    (
        "Password",
        lambda s: (
            "—"
            if s.auth_method != AuthMethod.PASSWORD
            else ("set" if s.password_set else "not set")
        ),
    ),
    ("Sender", _sender),
    ("Retries", lambda s: str(s.retries)),
    ("Client certificate", lambda s: _client_certificate(s)),
    ("Messages per minute", lambda s: _limit(s.messages_per_minute)),
    ("Max concurrent connections", lambda s: _limit(s.max_connections)),
    (
        "Failover",
        lambda s: "—" if s.level == Level.CONTROLLER else _on(s.failover),
    ),
]
# The identity rows: the column in effect shows what it inherits, and from where.
IDENTITY_PANEL_FIELDS = [
    ("Sender name", "sender_name"),
    ("Reply-To", "reply_to"),
    ("Bounce address", "bounce_address"),
]


def _identity_cell(effective: EffectiveSmtp, layer, name: str) -> dict[str, object]:
    in_effect = layer.level == effective.source
    if in_effect:
        value = getattr(effective.settings, name)
        origin = effective.inherited_from(name)
        if origin is not None:
            value = f"{value} (from {origin.label})"
        elif not value:
            value = "the sender address" if name == "bounce_address" else "—"
    elif layer.settings is not None:
        value = getattr(layer.settings, name) or "—"
    else:
        value = "—"
    return {"value": value, "in_effect": in_effect}


@dataclass(frozen=True)
class PanelColumn:
    label: str
    in_effect: bool
    note: str


def effective_panel(effective: EffectiveSmtp) -> dict[str, object]:
    """The "in effect" panel: one column per level, one row per field."""
    columns = []
    for layer in effective.layers:
        if layer.skipped_because:
            note = f"not used: {layer.skipped_because}"
        elif layer.settings is None:
            note = "not configured"
        else:
            note = ""
        columns.append(
            PanelColumn(
                label=layer.level.label,
                in_effect=layer.level == effective.source,
                note=note,
            )
        )
    rows = [
        {
            "label": label,
            "cells": [
                {
                    "value": value(layer.settings) if layer.settings else "—",
                    "in_effect": layer.level == effective.source,
                }
                for layer in effective.layers
            ],
        }
        for label, value in PANEL_FIELDS
    ]
    rows += [
        {
            "label": label,
            "cells": [
                _identity_cell(effective, layer, name) for layer in effective.layers
            ],
        }
        for label, name in IDENTITY_PANEL_FIELDS
    ]
    return {"columns": columns, "rows": rows}


def _smtp_page(
    request: HttpRequest, *, scope: TenantScope, template: str, nav: str
) -> HttpResponse:
    form = None
    # A Save & test whose verification did not pass (nothing was saved).
    failed_test = None
    # The level's own configuration and the one in effect, from one query.
    current, effective = smtp_config_get_and_effective(
        partner=scope.partner, organization=scope.organization
    )
    target = smtp_failover_target(effective, Level(scope.level))
    failover_to = target.label.lower() if target is not None else None
    if request.method == "POST":
        action = request.POST.get("action", "save")
        if action == "delete":
            if smtp_config_delete(scope=scope, actor=request.user):
                messages.success(request, _deleted_message(scope))
            return redirect(request.path)
        if action == "remove_password":
            if smtp_config_remove_password(scope=scope, actor=request.user):
                messages.success(
                    request,
                    "Password removed. Username cleared too: emails are now sent "
                    "without authentication.",
                )
            return redirect(request.path)
        if action == "remove_client_cert":
            if smtp_config_remove_client_certificate(scope=scope, actor=request.user):
                messages.success(request, "Client certificate and key removed.")
            return redirect(request.path)
        form = SmtpConfigForm(request.POST, failover_to=failover_to)
        if form.is_valid():
            try:
                if action == "save_and_test":
                    tested = smtp_config_save_tested(
                        scope=scope,
                        data=form.to_input(),
                        actor=request.user,
                        recipient=request.POST.get("recipient", ""),
                        verified_email_id=_whole_number(
                            request.POST.get("verified_email", "")
                        ),
                    )
                    result, failed_test = tested.saved, tested.verification
                else:
                    result = smtp_config_save(
                        scope=scope, data=form.to_input(), actor=request.user
                    )
            except SmtpValidationError as error:
                form.add_rule_errors(error.errors)
            except TestEmailRefused as refused:
                form.add_error(None, f"The test could not run: {refused.message}")
            else:
                if result is not None:
                    messages.success(
                        request,
                        "SMTP configuration saved and tested: every step up to "
                        "RCPT TO worked."
                        if action == "save_and_test"
                        else "SMTP configuration saved.",
                    )
                    for note in result.notes:
                        messages.info(request, note)
                    return redirect(request.path)
        # The form is shown again with its errors, or the failed test and Save
        # anyway (200, as browsers expect).
    if form is None:
        form = SmtpConfigForm(
            initial=SmtpConfigForm.initial_for(current), failover_to=failover_to
        )
    context = {
        "nav": nav,
        "form": form,
        "failed_test": failed_test,
        "configuration": current,
        "effective": effective,
        "panel": effective_panel(effective),
        "notices": smtp_config_notices(effective=effective, configuration=current),
        "level": scope.level,
        "failover_to": failover_to,
        "can_edit": request.user.is_tenant_admin,
    }
    return render(request, template, context)


def _whole_number(text: str) -> int | None:
    return int(text) if text.isdigit() and len(text) < 19 else None


def _deleted_message(scope: TenantScope) -> str:
    if scope.organization is not None:
        return (
            "Organization SMTP configuration deleted: the partner's or the "
            "controller's settings apply again."
        )
    return "Partner SMTP configuration deleted: the controller default applies again."


@ops_page
def ops_smtp(request: HttpRequest) -> HttpResponse:
    return _smtp_page(
        request, scope=request.scope, template="ops/smtp.html", nav="smtp"
    )


@console_page(Console.WEB, smtp_feature=True)
def web_smtp(request: HttpRequest) -> HttpResponse:
    return _smtp_page(
        request, scope=request.scope, template="console/smtp.html", nav="settings"
    )


def _fields_refused(fields: dict[str, list[str]]) -> JsonResponse:
    return JsonResponse(
        {"error": "Fix the fields marked below.", "fields": fields}, status=400
    )


def _smtp_test(request: HttpRequest, *, scope: TenantScope) -> JsonResponse:
    """Queue a test of the values in the form (before Save); JSON for the page.

    With Host left empty at a level that has no configuration of its own, the
    configuration in effect (the partner's or the controller's) is tested, and
    the answer names its level."""
    in_effect = ""
    form = values = None
    if not request.POST.get("host", "").strip() and (
        smtp_config_get(partner=scope.partner, organization=scope.organization) is None
    ):
        in_effect = smtp_config_effective(
            partner=scope.partner, organization=scope.organization
        ).source.value
    else:
        form = SmtpConfigForm(request.POST)
        if not form.is_valid():
            return _fields_refused(form.errors)
        values = form.to_input()
    try:
        email = smtp_test_email_request(
            scope=scope,
            actor=request.user,
            recipient=request.POST.get("recipient", ""),
            verify_only=request.POST.get("mode") == "verify",
            form=values,
        )
    except SmtpValidationError as error:
        fields = error.errors
        return _fields_refused(form.rule_fields(fields) if form else fields)
    except TestEmailRefused as refused:
        body, status, headers = refusal_answer(refused)
        return JsonResponse(body, status=status, headers=headers)
    status_url = reverse("api-email-verification-status", args=[email.pk])
    return JsonResponse(
        {
            "id": email.pk,
            "status": email.status,
            "status_url": status_url,
            # The level whose configuration in effect is tested ("": the form's).
            "in_effect": in_effect,
        },
        status=202,
    )


@require_POST
@ops_page
def ops_smtp_test(request: HttpRequest) -> JsonResponse:
    return _smtp_test(request, scope=request.scope)


@require_POST
@console_page(Console.WEB, smtp_feature=True)
def web_smtp_test(request: HttpRequest) -> JsonResponse:
    return _smtp_test(request, scope=request.scope)


def _email_page(
    request: HttpRequest, *, scope: TenantScope, email_id: int, console: str
) -> HttpResponse:
    email = email_get(scope=scope, email_id=email_id)
    if email is None:
        raise Http404("No such email for your tenant.")
    return render(
        request,
        "smtp/email.html",
        {
            "email": email,
            "attempts": email_attempts(email=email),
            "nav": "audit",
            "base_template": f"{console}/base.html",
            "audit_url": reverse(f"{'ops' if console == 'ops' else 'web'}:audit-logs"),
        },
    )


@ops_page
def ops_email(request: HttpRequest, email_id: int) -> HttpResponse:
    return _email_page(request, scope=request.scope, email_id=email_id, console="ops")


@web_page
def web_email(request: HttpRequest, email_id: int) -> HttpResponse:
    return _email_page(
        request, scope=request.scope, email_id=email_id, console="console"
    )


# -- the partner's email identity: sender domains, branding, texts, previews ----


def _add_errors(form, errors: dict[str, list[str]]) -> None:
    for name, messages_ in errors.items():
        for message in messages_:
            form.add_error(name if name in form.fields else None, message)


def _identity_action(request: HttpRequest, scope: TenantScope, forms_: dict):
    """Handle one POSTed section of the Emails page; a redirect when saved."""
    action = request.POST.get("action", "")
    try:
        if action == "domains":
            form = forms_["domains"] = SenderDomainsForm(request.POST)
            if form.is_valid():
                result = sender_domains_save(
                    scope=scope, domains=form.domains(), actor=request.user
                )
                messages.success(request, "Allowed sender domains saved.")
                for note in result.notes:
                    messages.warning(request, note)
                return redirect(request.path)
        elif action == "branding":
            form = forms_["branding"] = BrandingForm(request.POST, request.FILES)
            if form.is_valid():
                data = form.cleaned_data
                email_branding_save(
                    scope=scope,
                    data=BrandingInput(
                        product_name=data.get("product_name") or "",
                        primary_color=data.get("primary_color") or "",
                        footer=data.get("footer") or "",
                        support_email=data.get("support_email") or "",
                        logo=form.logo_bytes(),
                        remove_logo=bool(data.get("remove_logo")),
                    ),
                    actor=request.user,
                )
                messages.success(request, "Branding saved.")
                return redirect(request.path)
        elif action == "texts":
            form = forms_["texts"] = EmailTextsForm(request.POST)
            if form.is_valid():
                email_texts_save(scope=scope, texts=form.texts(), actor=request.user)
                messages.success(request, "Email texts saved.")
                return redirect(request.path)
    except SmtpValidationError as error:
        _add_errors(form, error.errors)
    return None


@ops_page
def ops_email_identity(request: HttpRequest) -> HttpResponse:
    """Allowed sender domains, branding and per-kind texts of the partner."""
    scope = request.scope
    forms_: dict[str, object] = {}
    if request.method == "POST":
        done = _identity_action(request, scope, forms_)
        if done is not None:
            return done
    identity = email_identity_get(partner=scope.partner)
    branding = email_branding(partner=scope.partner)
    forms_.setdefault(
        "domains",
        SenderDomainsForm(
            initial={
                "allowed_sender_domains": "\n".join(
                    identity.allowed_sender_domains if identity else ()
                )
            }
        ),
    )
    forms_.setdefault(
        "branding", BrandingForm(initial=BrandingForm.initial_for(identity))
    )
    forms_.setdefault(
        "texts", EmailTextsForm(initial=EmailTextsForm.initial_for(branding.texts))
    )
    return render(
        request,
        "ops/email_identity.html",
        {
            "nav": "email",
            "domains_form": forms_["domains"],
            "branding_form": forms_["branding"],
            "texts_form": forms_["texts"],
            "branding": branding,
            "placeholders": PLACEHOLDERS,
            "kinds": [EmailKind(kind) for kind in BRANDED_KINDS],
            "can_edit": request.user.is_tenant_admin,
        },
    )


def _preview_kind(kind: str) -> EmailKind:
    if kind not in BRANDED_KINDS:
        raise Http404("No such kind of email.")
    return EmailKind(kind)


@ops_page
def ops_email_preview(request: HttpRequest, kind: str) -> HttpResponse:
    """One kind of email as it would be sent: the HTML part and the text part."""
    scope = request.scope
    email_kind = _preview_kind(kind)
    rendered = email_preview_render(
        kind=email_kind,
        branding=email_branding(partner=scope.partner),
        user=request.user,
        partner=scope.partner,
    )
    effective = smtp_config_effective(partner=scope.partner)
    return render(
        request,
        "ops/email_preview.html",
        {
            "nav": "email",
            "kind": email_kind,
            "kinds": [EmailKind(k) for k in BRANDED_KINDS],
            "rendered": rendered,
            "effective": effective,
            "can_edit": request.user.is_tenant_admin,
        },
    )


@require_POST
@ops_page
def ops_email_preview_send(request: HttpRequest, kind: str) -> HttpResponse:
    """Send the preview to the person looking at it, through the configuration
    in effect."""
    email_kind = _preview_kind(kind)
    try:
        email = email_preview_send(
            scope=request.scope, actor=request.user, kind=email_kind
        )
    except TestEmailRefused as refused:
        messages.error(request, refused.message)
    else:
        messages.success(
            request,
            f"Preview queued to {email.recipient} through the configuration in "
            f"effect (email #{email.pk}).",
        )
        return redirect(f"{reverse('ops:email-preview', args=[kind])}?sent={email.pk}")
    return redirect(reverse("ops:email-preview", args=[kind]))


@require_GET
def email_logo(request: HttpRequest, partner_id: int, digest: str) -> HttpResponse:
    """A partner's logo for its emails: public (mail clients fetch it without a
    session), addressed by its digest, the stored bytes with their checked type."""
    logo = email_logo_get(partner_id=partner_id, digest=digest)
    if logo is None:
        raise Http404("No such logo.")
    data, content_type = logo
    response = HttpResponse(data, content_type=content_type)
    # The address changes with the logo: it can be cached for good.
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["X-Content-Type-Options"] = "nosniff"
    return response
