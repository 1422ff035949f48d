"""System emails as they are sent: a subject, a plain-text part and an HTML part,
rendered from Django templates (``templates/emails/<kind>.txt`` and ``.html``)
with the partner's branding and texts.

A partner's subject and intro are plain text with placeholders of a fixed set
(``smtp.identity.PLACEHOLDERS``), filled in here; the HTML templates escape
them like every other value, so no tenant can add markup.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string

from core.text import has_control_characters
from smtp.enums import BRANDED_KINDS, EmailKind
from smtp.identity import fill_placeholders
from smtp.selectors import EmailBranding

__all__ = [
    "BRANDED_KINDS",
    "DEFAULT_TEXTS",
    "RenderedEmail",
    "email_preview_render",
    "email_render",
]

# The console's own subject and intro of each kind, with the same placeholders a
# partner may use.
DEFAULT_TEXTS: dict[str, tuple[str, str]] = {
    EmailKind.PASSWORD_SETUP: (
        "Set your password for {{ organization }}",
        "Hello {{ user_name }},\n\nAn account was created for you in the Web "
        "Console of {{ organization }}.",
    ),
    EmailKind.PASSWORD_RESET: (
        "Reset your {{ product_name }} password",
        "Hello {{ user_name }},\n\nSomeone asked to reset the password of "
        "{{ user_email }}.",
    ),
    EmailKind.ALERT: ("[{{ severity }}] {{ title }}", ""),
    EmailKind.TEST: (
        "Test email from the {{ product_name }}",
        "This is a test email from the {{ product_name }}.",
    ),
}


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def _one_line(value: str) -> str:
    """A value bound for a header: one line, no control characters."""
    text = " ".join(str(value).split())
    if has_control_characters(text):
        text = "".join(ch for ch in text if not has_control_characters(ch))
    return text


def placeholder_values(
    *, context: dict[str, Any], recipient: str, branding: EmailBranding
) -> dict[str, str]:
    """The values of the placeholders for one email."""
    user = context.get("user")
    organization = context.get("organization")
    partner = context.get("partner")
    days = context.get("expiry_days")
    user_email = getattr(user, "email", "") or recipient
    return {
        "user_name": (getattr(user, "full_name", "") or user_email),
        "user_email": user_email,
        "organization": getattr(organization, "name", "") or "",
        "partner": getattr(partner, "name", "") or "",
        "product_name": branding.product_name,
        "link": str(context.get("link", "")),
        "expires_in": f"{days} day{'s' if days != 1 else ''}" if days else "",
        "title": str(context.get("title", "")),
        "severity": str(context.get("severity") or "alert").upper(),
    }


def email_render(
    *,
    kind: str,
    context: dict[str, Any],
    recipient: str,
    branding: EmailBranding,
    subject: str = "",
) -> RenderedEmail:
    """Render one system email: the partner's subject and intro (or the
    defaults), both parts from the templates. ``subject`` overrides all (a test
    email's own)."""
    default_subject, default_intro = DEFAULT_TEXTS[kind]
    own_subject, own_intro = branding.text_for(kind)
    values = placeholder_values(context=context, recipient=recipient, branding=branding)
    line_values = {name: _one_line(value) for name, value in values.items()}
    subject = _one_line(
        subject or fill_placeholders(own_subject or default_subject, line_values)
    )
    intro = fill_placeholders(own_intro or default_intro, values).strip()
    full_context = {
        **context,
        **values,
        "intro": intro,
        "footer": fill_placeholders(branding.footer, values).strip(),
        "subject": subject,
        "brand": branding,
    }
    text = render_to_string(f"emails/{kind}.txt", full_context)
    if context.get("custom"):
        # A test email's own body is sent as it was written.
        text = str(context.get("body", ""))
    else:
        text = text.strip("\n") + "\n"
    return RenderedEmail(
        subject=subject[:255],
        text=text,
        html=render_to_string(f"emails/{kind}.html", full_context),
    )


def _sample_context(*, kind: str, user: Any, organization: Any) -> dict[str, Any]:
    """Example values for a preview: the viewer as the recipient, and a link
    that goes nowhere."""
    base = settings.PUBLIC_URL
    sample_link = {
        EmailKind.PASSWORD_SETUP: f"{base}/account/setup/example-preview-link/",
        EmailKind.PASSWORD_RESET: f"{base}/password-reset/example-preview-link/",
        EmailKind.ALERT: f"{base}/ops/audit-logs/",
    }.get(kind, "")
    context: dict[str, Any] = {
        "user": user,
        "organization": organization or SimpleNamespace(name="Example Organization"),
        "link": sample_link,
        "expiry_days": max(1, settings.PASSWORD_RESET_TIMEOUT // 86400),
    }
    if kind == EmailKind.ALERT:
        context.update(
            title="Disk almost full",
            message="Node 3 of cluster eu-1 is at 91% disk usage.",
            severity="warning",
        )
    if kind == EmailKind.TEST:
        context["body"] = (
            "It was sent to check the SMTP configuration.\n\n"
            "If you can read this, the configuration delivers mail."
        )
    return context


def email_preview_render(
    *, kind: str, branding: EmailBranding, user: Any, partner: Any = None
) -> RenderedEmail:
    """One kind of email as it would be sent with this branding, to ``user``."""
    context = _sample_context(kind=kind, user=user, organization=None)
    context["partner"] = partner
    return email_render(
        kind=kind, context=context, recipient=user.email, branding=branding
    )
