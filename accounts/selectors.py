"""Reads that span tenants and smtp."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from smtp.enums import Level
from smtp.models import SmtpConfiguration
from smtp.selectors import EffectiveSmtp, smtp_config_effective, smtp_config_get
from tenants.models import Organization, Partner
from tenants.selectors import organization_list


def organization_list_with_smtp(*, partner: Partner) -> QuerySet[Organization]:
    """The partner's organizations, by name, with their own SMTP configuration."""
    return organization_list(partner=partner).select_related("smtp_configuration")


@dataclass(frozen=True)
class OrganizationSmtp:
    """An organization's SMTP as the Ops Console shows it: what is in effect
    (and the stored row whose health applies), and its own configuration."""

    effective: EffectiveSmtp
    # The stored configuration in effect; None for the controller default or none.
    effective_row: SmtpConfiguration | None
    own: SmtpConfiguration | None

    @property
    def uses_own(self) -> bool:
        return self.effective.source == Level.ORGANIZATION


def organization_smtp(*, organization: Organization) -> OrganizationSmtp:
    """The SMTP in effect for ``organization`` and its own configuration's state."""
    effective = smtp_config_effective(
        partner=organization.partner, organization=organization
    )
    own = smtp_config_get(partner=organization.partner, organization=organization)
    effective_row: SmtpConfiguration | None = None
    if effective.source == Level.ORGANIZATION:
        effective_row = own
    elif effective.source == Level.PARTNER:
        effective_row = smtp_config_get(partner=organization.partner)
    return OrganizationSmtp(effective=effective, effective_row=effective_row, own=own)


def partner_smtp_inherited(*, partner: Partner) -> EffectiveSmtp:
    """What an organization without a configuration in use inherits: the
    partner's configuration, else the controller default."""
    return smtp_config_effective(partner=partner)
