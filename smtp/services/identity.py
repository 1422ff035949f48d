"""Writes of a partner's email identity: its allowed sender domains, its branding
and its per-kind subject and intro texts. Validated, atomic and audited."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction

from audit.models import Category
from audit.services import actor_label, audit_event_record, event_scope
from smtp.identity import allowed_domains_parse, allowed_domains_text, domain_allowed
from smtp.models import PartnerEmailIdentity, SmtpConfiguration
from smtp.selectors import effective_sender
from smtp.validators import SmtpValidationError
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
