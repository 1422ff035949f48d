"""Reads that span tenants and smtp."""

from __future__ import annotations

from django.db.models import QuerySet

from tenants.models import Organization, Partner
from tenants.selectors import organization_list


def organization_list_with_smtp(*, partner: Partner) -> QuerySet[Organization]:
    """The partner's organizations, by name, with their own SMTP configuration."""
    return organization_list(partner=partner).select_related("smtp_configuration")
