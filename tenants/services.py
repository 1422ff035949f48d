"""Writes about tenants: feature flags (audited) and console users."""

from __future__ import annotations

from django.db import transaction

from audit.models import Category
from audit.services import actor_label, audit_event_record
from tenants.models import Organization, User


@transaction.atomic
def organization_smtp_feature_set(
    *, organization: Organization, enabled: bool, actor: User | None
) -> bool:
    """Switch an organization's SMTP configuration feature; audited. True if changed."""
    locked = Organization.objects.select_for_update().get(pk=organization.pk)
    if locked.smtp_configuration_enabled == enabled:
        organization.smtp_configuration_enabled = enabled
        return False
    locked.smtp_configuration_enabled = enabled
    locked.save(update_fields=["smtp_configuration_enabled"])
    organization.smtp_configuration_enabled = enabled
    state = "enabled" if enabled else "disabled"
    audit_event_record(
        category=Category.AUDIT,
        type=f"feature.smtp_configuration.{state}",
        summary=f"SMTP configuration feature {state} for {organization.name}",
        actor=actor_label(actor),
        partner_id=organization.partner_id,
        organization_id=organization.pk,
        detail={"feature": "smtp_configuration", "enabled": enabled},
    )
    return True
