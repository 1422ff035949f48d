"""Writes of a partner's email identity: its allowed sender domains, its branding
and its per-kind subject and intro texts. Validated, atomic and audited."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from audit.models import Category
from audit.services import actor_label, audit_event_record, event_scope
from core.stamps import partner_stamp, stamp_renew_on_commit
from smtp.enums import BRANDED_KINDS, EmailKind
from smtp.identity import (
    FOOTER_MAX,
    INTRO_MAX,
    SUBJECT_MAX,
    allowed_domains_parse,
    allowed_domains_text,
    domain_allowed,
    logo_type,
    validate_color,
    validate_display_name,
    validate_template_text,
)
from smtp.models import EmailTextOverride, PartnerEmailIdentity, SmtpConfiguration
from smtp.selectors import effective_sender
from smtp.validators import SmtpValidationError, validate_address
from tenants.models import User
from tenants.selectors import TenantScope

DOMAINS_FIELD = "allowed_sender_domains"


@dataclass(frozen=True)
class IdentitySaveResult:
    identity: PartnerEmailIdentity
    notes: tuple[str, ...] = ()


def _partner_only(scope: TenantScope) -> None:
    if scope.organization is not None:
        raise PermissionError("Only a partner sets its email identity.")


def _locked_identity(scope: TenantScope) -> PartnerEmailIdentity:
    identity, _created = PartnerEmailIdentity.objects.select_for_update().get_or_create(
        partner=scope.partner
    )
    return identity


def _addresses(configuration: SmtpConfiguration) -> list[tuple[str, str]]:
    """A configuration's addresses that the allowed domains apply to."""
    sender, origin = effective_sender(
        configured=configuration.sender_email, username=configuration.username
    )
    return [
        ("Sender", sender if origin != "default" else ""),
        ("Reply-To", configuration.reply_to),
        ("Bounce address", configuration.bounce_address),
    ]


def _outside(configuration: SmtpConfiguration, patterns: list[str]) -> str:
    """The first address of ``configuration`` outside ``patterns``, described."""
    for label, address in _addresses(configuration):
        if address and not domain_allowed(address, patterns):
            return f"{label} {address}"
    return ""


def _record(
    scope: TenantScope, actor: User | None, changes: dict[str, Any], what: str
) -> None:
    # Every process reads the partner's emails' look again.
    stamp_renew_on_commit(partner_stamp(scope.partner.pk))
    audit_event_record(
        category=Category.AUDIT,
        type="email_identity.updated",
        summary=f"Email {what} updated for partner {scope.partner.name}",
        actor=actor_label(actor),
        **event_scope(scope),
        detail={"level": scope.level, "changes": changes},
    )


@transaction.atomic
def sender_domains_save(
    *, scope: TenantScope, domains: list[str], actor: User | None
) -> IdentitySaveResult:
    """Set the partner's allowed sender domains (empty list: any domain).

    Refused (``SmtpValidationError`` naming ``allowed_sender_domains``, nothing
    changed) for a bad entry, or when the partner's own configuration sends
    outside the new list. Organizations' configurations outside it are not used
    from now on (the precedence skips them); the notes name them.
    """
    _partner_only(scope)
    errors: dict[str, list[str]] = {}
    patterns = allowed_domains_parse(
        domains, errors, name=DOMAINS_FIELD, label="Allowed sender domains"
    )
    configurations = list(
        SmtpConfiguration.objects.filter(partner=scope.partner).select_related(
            "organization"
        )
    )
    if patterns and not errors:
        own = next((c for c in configurations if c.organization_id is None), None)
        outside = _outside(own, patterns) if own is not None else ""
        if outside:
            errors.setdefault(DOMAINS_FIELD, []).append(
                f"The partner's own SMTP configuration sends with {outside}, outside "
                f"{allowed_domains_text(patterns)}: add its domain, or change the "
                "configuration on the SMTP page first."
            )
    if errors:
        raise SmtpValidationError(errors)
    identity = _locked_identity(scope)
    before = list(identity.allowed_sender_domains)
    identity.allowed_sender_domains = patterns
    identity.updated_by = actor if actor and actor.is_authenticated else None
    identity.full_clean(exclude=["logo"])
    identity.save()
    if before != patterns:
        _record(scope, actor, {DOMAINS_FIELD: [before, patterns]}, "sender domains")
    notes = []
    if patterns:
        for configuration in configurations:
            if configuration.organization is None:
                continue
            outside = _outside(configuration, patterns)
            if outside:
                notes.append(
                    f"The SMTP configuration of organization "
                    f"{configuration.organization.name} is not used while its "
                    f"{outside} is outside these domains: the partner's applies "
                    "instead."
                )
    return IdentitySaveResult(identity=identity, notes=tuple(notes))


# -- branding ------------------------------------------------------------------------


@dataclass(frozen=True)
class BrandingInput:
    product_name: str = ""
    primary_color: str = ""
    footer: str = ""
    support_email: str = ""
    # A new logo's bytes (None: keep the stored one), or remove it.
    logo: bytes | None = None
    remove_logo: bool = False


BRANDING_FIELDS = ("product_name", "primary_color", "footer", "support_email")


@transaction.atomic
def email_branding_save(
    *, scope: TenantScope, data: BrandingInput, actor: User | None
) -> PartnerEmailIdentity:
    """Set the partner's branding (its organizations inherit it).

    Raises ``SmtpValidationError`` by field (nothing changed) for a bad value or
    a logo that is too large or not a PNG, JPEG or GIF.
    """
    _partner_only(scope)
    errors: dict[str, list[str]] = {}
    values = {
        "product_name": validate_display_name(
            "product_name", "Product name", data.product_name, errors
        ),
        "primary_color": validate_color(
            "primary_color", "Primary colour", data.primary_color, errors
        ),
        "footer": validate_template_text(
            "footer", "Footer", data.footer, errors, one_line=False, limit=FOOTER_MAX
        ),
        "support_email": validate_address(
            "support_email",
            "Support address",
            data.support_email,
            errors,
            required=False,
        ),
    }
    content_type = ""
    if data.logo is not None and not data.remove_logo:
        content_type = logo_type("logo", data.logo, errors)
    if errors:
        raise SmtpValidationError(errors)
    identity = _locked_identity(scope)
    changes: dict[str, Any] = {}
    for name, value in values.items():
        if getattr(identity, name) != value:
            changes[name] = [getattr(identity, name), value]
            setattr(identity, name, value)
    if data.remove_logo and identity.logo_digest:
        identity.logo, identity.logo_type, identity.logo_digest = None, "", ""
        changes["logo"] = "removed"
    elif content_type:
        digest = hashlib.sha256(data.logo).hexdigest()
        if digest != identity.logo_digest:
            changes["logo"] = f"{content_type}, {len(data.logo)} bytes"
        identity.logo, identity.logo_type, identity.logo_digest = (
            data.logo,
            content_type,
            digest,
        )
    identity.updated_by = actor if actor and actor.is_authenticated else None
    identity.full_clean(exclude=["logo", "allowed_sender_domains"])
    identity.save()
    if changes:
        _record(scope, actor, changes, "branding")
    return identity


@transaction.atomic
def email_texts_save(
    *, scope: TenantScope, texts: dict[str, tuple[str, str]], actor: User | None
) -> None:
    """Set the partner's subject and intro per kind of email (empty: the default).

    Raises ``SmtpValidationError`` naming ``subject_<kind>`` or ``intro_<kind>``
    (nothing changed) for an unknown placeholder, a template tag, a line break
    in a subject, control characters or too long a text.
    """
    _partner_only(scope)
    errors: dict[str, list[str]] = {}
    clean: dict[str, tuple[str, str]] = {}
    for kind, (subject, intro) in texts.items():
        if kind not in BRANDED_KINDS:
            errors.setdefault("kind", []).append(
                f"Unknown kind of email {kind!r}: use one of "
                f"{', '.join(BRANDED_KINDS)}."
            )
            continue
        label = EmailKind(kind).label
        clean[kind] = (
            validate_template_text(
                f"subject_{kind}",
                f"Subject of {label}",
                subject,
                errors,
                one_line=True,
                limit=SUBJECT_MAX,
            ),
            validate_template_text(
                f"intro_{kind}",
                f"Intro of {label}",
                intro,
                errors,
                one_line=False,
                limit=INTRO_MAX,
            ),
        )
    if errors:
        raise SmtpValidationError(errors)
    existing = {
        row.kind: row
        for row in EmailTextOverride.objects.select_for_update().filter(
            partner=scope.partner
        )
    }
    changes: dict[str, Any] = {}
    for kind, (subject, intro) in clean.items():
        row = existing.get(kind)
        before = (row.subject, row.intro) if row else ("", "")
        if before == (subject, intro):
            continue
        changes[kind] = {"subject": [before[0], subject], "intro": [before[1], intro]}
        if not subject and not intro:
            if row is not None:
                row.delete()
            continue
        row = row or EmailTextOverride(partner=scope.partner, kind=kind)
        row.subject, row.intro = subject, intro
        row.full_clean()
        row.save()
    if changes:
        _record(scope, actor, changes, "texts")
