"""Support staff in ``/admin/``: see tenants, toggle the SMTP feature (audited)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from audit.models import AuditEvent, Category
from tenants.models import Organization, User
from tenants.support import SUPPORT_GROUP

pytestmark = pytest.mark.django_db


def change_form_data(organization: Organization, **changes) -> dict:
    data = {
        "partner": organization.partner_id,
        "slug": organization.slug,
        "name": organization.name,
    }
    if organization.smtp_configuration_enabled:
        data["smtp_configuration_enabled"] = "on"
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_support_sees_partners_and_organizations(demo, login):
    client = login(demo["support"])
    assert "Acme Cloud" in client.get("/admin/tenants/partner/").content.decode()
    organizations = client.get("/admin/tenants/organization/").content.decode()
    assert "Acme Development" in organizations and "Globex Main" in organizations


def test_support_enables_the_smtp_feature_and_it_is_audited(demo, login):
    organization = demo["acme-dev"]
    client = login(demo["support"])
    response = client.post(
        f"/admin/tenants/organization/{organization.pk}/change/",
        change_form_data(organization, smtp_configuration_enabled="on"),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    organization.refresh_from_db()
    assert organization.smtp_configuration_enabled
    event = AuditEvent.objects.get(
        type="feature.smtp_configuration.enabled", organization=organization
    )
    assert event.category == Category.AUDIT
    assert event.actor == "support@ops.example"
    assert event.organization_id == organization.pk
    assert event.partner_id == organization.partner_id
    # Takes effect at once for the organization's admin.
    page = login(demo["dev_admin"]).get("/console/infrastructure/system/settings/")
    assert "SMTP Configuration" in page.content.decode()


def test_support_disables_the_feature_with_the_list_action(demo, login):
    client = login(demo["support"])
    response = client.post(
        "/admin/tenants/organization/",
        {
            "action": "disable_smtp_feature",
            "_selected_action": [demo["acme-prod"].pk, demo["globex-main"].pk],
        },
    )
    assert response.status_code == 302
    assert not Organization.objects.filter(smtp_configuration_enabled=True).exists()
    assert (
        AuditEvent.objects.filter(type="feature.smtp_configuration.disabled").count()
        == 2
    )


def test_staff_without_the_permission_cannot_toggle_the_flag(demo, login):
    staff = User.objects.create_user("viewer@ops.example", "Viewer-Pass-123")
    staff.is_staff = True
    staff.save()
    support_group = Group.objects.get(name=SUPPORT_GROUP)
    staff.user_permissions.set(
        support_group.permissions.exclude(codename="toggle_feature_flags")
    )
    organization = demo["acme-dev"]
    client = login(staff)
    client.post(
        f"/admin/tenants/organization/{organization.pk}/change/",
        change_form_data(organization, smtp_configuration_enabled="on"),
    )
    organization.refresh_from_db()
    assert not organization.smtp_configuration_enabled
    assert not AuditEvent.objects.filter(
        type="feature.smtp_configuration.enabled", actor=staff.email
    ).exists()


def test_organization_admins_cannot_use_the_admin_site(demo, login):
    response = login(demo["prod_admin"]).get("/admin/tenants/organization/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
