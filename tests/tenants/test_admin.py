"""Support staff in ``/admin/``: see tenants, toggle the SMTP feature (audited)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from audit.models import AuditEvent, Category
from smtp.models import Security, SmtpConfiguration
from smtp.services import smtp_config_health_check
from tenants.models import Organization, User
from tenants.support import SUPPORT_GROUP
from tests.support.smtp_servers import free_port

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


def test_support_can_switch_the_flag_but_not_rename_or_move_an_organization(
    demo, login
):
    organization = demo["acme-dev"]
    client = login(demo["support"])
    page = client.get(f"/admin/tenants/organization/{organization.pk}/change/")
    html = page.content.decode()
    assert 'name="smtp_configuration_enabled"' in html
    for field in ("name", "slug", "partner"):
        assert f'name="{field}"' not in html
    # when: support posts a new name, identifier and partner with the flag
    response = client.post(
        f"/admin/tenants/organization/{organization.pk}/change/",
        change_form_data(
            organization,
            name="Renamed by support",
            slug="renamed-by-support",
            partner=demo["globex"].pk,
            smtp_configuration_enabled="on",
        ),
    )
    # then: only the flag changed, and only the flag is in the log
    assert response.status_code == 302, response.content.decode()[:2000]
    organization.refresh_from_db()
    assert organization.smtp_configuration_enabled
    assert (organization.name, organization.slug, organization.partner) == (
        "Acme Development",
        "acme-dev",
        demo["acme"],
    )
    assert list(
        AuditEvent.objects.filter(organization=organization).values_list(
            "type", flat=True
        )
    ) == ["feature.smtp_configuration.enabled"]


@pytest.fixture
def superuser(db) -> User:
    return User.objects.create_superuser("root@ops.example", "Root-Pass-12345")


def test_a_superusers_rename_and_move_are_audited_with_old_and_new_values(
    demo, login, superuser
):
    organization = demo["acme-dev"]
    response = login(superuser).post(
        f"/admin/tenants/organization/{organization.pk}/change/",
        change_form_data(
            organization,
            name="Globex Development",
            slug="globex-dev",
            partner=demo["globex"].pk,
        ),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    organization.refresh_from_db()
    assert (organization.name, organization.slug, organization.partner) == (
        "Globex Development",
        "globex-dev",
        demo["globex"],
    )
    events = AuditEvent.objects.filter(type="organization.updated").order_by("id")
    # One event in each partner's log: the old partner's ends with the move,
    # the new partner's begins with it.
    assert [event.partner_id for event in events] == [
        demo["acme"].pk,
        demo["globex"].pk,
    ]
    for event in events:
        assert event.category == Category.AUDIT
        assert event.actor == "root@ops.example"
        assert event.organization_id == organization.pk
        assert event.detail == {
            "organization": "globex-dev",
            "changes": {
                "name": {"old": "Acme Development", "new": "Globex Development"},
                "slug": {"old": "acme-dev", "new": "globex-dev"},
                "partner": {"old": "acme", "new": "globex"},
            },
        }
        assert event.summary == (
            "Organization Acme Development moved from Acme Cloud to Globex Hosting; "
            "changed name, slug"
        )
    assert not AuditEvent.objects.filter(
        organization=organization, type__startswith="feature."
    ).exists()


def test_a_superusers_flag_and_name_change_give_one_event_each(demo, login, superuser):
    organization = demo["acme-dev"]
    login(superuser).post(
        f"/admin/tenants/organization/{organization.pk}/change/",
        change_form_data(
            organization, name="Acme Dev", smtp_configuration_enabled="on"
        ),
    )
    updated = AuditEvent.objects.get(type="organization.updated")
    assert updated.partner_id == demo["acme"].pk
    assert updated.detail["changes"] == {
        "name": {"old": "Acme Development", "new": "Acme Dev"}
    }
    assert updated.summary == "Organization Acme Development changed: name"
    assert AuditEvent.objects.filter(
        type="feature.smtp_configuration.enabled", organization=organization
    ).exists()


def test_saving_an_unchanged_organization_records_nothing(demo, login, superuser):
    organization = demo["acme-dev"]
    before = AuditEvent.objects.count()
    response = login(superuser).post(
        f"/admin/tenants/organization/{organization.pk}/change/",
        change_form_data(organization),
    )
    assert response.status_code == 302
    assert AuditEvent.objects.count() == before


def test_a_taken_identifier_is_refused_naming_the_field_and_nothing_changes(
    demo, login, superuser
):
    organization = demo["acme-dev"]
    before = AuditEvent.objects.count()
    response = login(superuser).post(
        f"/admin/tenants/organization/{organization.pk}/change/",
        change_form_data(organization, name="Other", slug="acme-prod"),
    )
    assert response.status_code == 200
    assert "Organization with this Slug already exists" in response.content.decode()
    organization.refresh_from_db()
    assert (organization.name, organization.slug) == ("Acme Development", "acme-dev")
    assert AuditEvent.objects.count() == before


def test_a_superuser_adding_and_deleting_an_organization_is_audited(
    demo, login, superuser
):
    client = login(superuser)
    response = client.post(
        "/admin/tenants/organization/add/",
        {
            "partner": demo["globex"].pk,
            "slug": "globex-lab",
            "name": "Globex Lab",
            "smtp_configuration_enabled": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    organization = Organization.objects.get(slug="globex-lab")
    assert organization.smtp_configuration_enabled
    created = AuditEvent.objects.get(type="organization.created")
    assert (created.partner_id, created.organization_id) == (
        demo["globex"].pk,
        organization.pk,
    )
    assert created.detail == {
        "organization": "globex-lab",
        "name": "Globex Lab",
        "partner": "globex",
    }
    assert AuditEvent.objects.filter(
        type="feature.smtp_configuration.enabled", organization=organization
    ).exists()

    # An organization with a history cannot be deleted: its events keep it.
    refused = client.post(
        f"/admin/tenants/organization/{organization.pk}/delete/", {"post": "yes"}
    )
    assert refused.status_code == 200
    assert Organization.objects.filter(pk=organization.pk).exists()

    empty = Organization.objects.create(
        partner=demo["globex"], slug="globex-empty", name="Globex Empty"
    )
    deleted = client.post(
        f"/admin/tenants/organization/{empty.pk}/delete/", {"post": "yes"}
    )
    assert deleted.status_code == 302
    assert not Organization.objects.filter(pk=empty.pk).exists()
    event = AuditEvent.objects.get(type="organization.deleted")
    assert (event.partner_id, event.organization_id) == (demo["globex"].pk, None)
    assert event.detail == {"organization": "globex-empty", "name": "Globex Empty"}
    assert event.actor == "root@ops.example"


def test_a_moved_organizations_smtp_configuration_moves_with_it(demo, login, superuser):
    organization = demo["acme-prod"]
    configuration = SmtpConfiguration.objects.create(
        partner=demo["acme"],
        organization=organization,
        host="127.0.0.1",
        port=free_port(),
        security=Security.NONE,
    )
    response = login(superuser).post(
        f"/admin/tenants/organization/{organization.pk}/change/",
        change_form_data(organization, partner=demo["globex"].pk),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    configuration.refresh_from_db()
    assert configuration.partner == demo["globex"]
    # What is recorded about it from now on (here: a health check that finds
    # nothing listening) is in the new partner's log, not in the old one's.
    smtp_config_health_check(configuration_id=configuration.pk)
    event = AuditEvent.objects.get(type="smtp_config.health.failing")
    assert (event.partner_id, event.organization_id) == (
        demo["globex"].pk,
        organization.pk,
    )
