"""Reads about tenants."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import QuerySet

from tenants.models import Organization, Partner, User


@dataclass(frozen=True)
class TenantScope:
    """What a console user acts on: their partner, and their organization if any."""

    partner: Partner
    organization: Organization | None

    @property
    def level(self) -> str:
        return "organization" if self.organization is not None else "partner"

    @property
    def partner_id(self) -> int:
        return self.partner.pk

    @property
    def organization_id(self) -> int | None:
        return self.organization.pk if self.organization is not None else None


def tenant_scope_for_user(*, user: User) -> TenantScope | None:
    """The tenant a user belongs to, or ``None`` for users without one (support)."""
    if user.organization_id is not None:
        organization = user.organization
        return TenantScope(partner=organization.partner, organization=organization)
    if user.partner_id is not None:
        return TenantScope(partner=user.partner, organization=None)
    return None


def organization_list(*, partner: Partner) -> QuerySet[Organization]:
    """The partner's organizations, by name."""
    return Organization.objects.filter(partner=partner).order_by("name")


def organization_get(*, partner: Partner, organization_id: int) -> Organization | None:
    """One of the partner's organizations, or ``None`` (also for other partners')."""
    return Organization.objects.filter(partner=partner, pk=organization_id).first()


def organization_names(*, slugs: Iterable[str]) -> dict[str, str]:
    """The names of the organizations with these identifiers, by identifier."""
    wanted = {slug for slug in slugs if slug}
    if not wanted:
        return {}
    return dict(
        Organization.objects.filter(slug__in=wanted).values_list("slug", "name")
    )
