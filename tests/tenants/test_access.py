"""Who sees which console page: console, tenant, role and feature flag checks."""

from __future__ import annotations

import pytest

from tenants.models import Role

pytestmark = pytest.mark.django_db

OPS_PAGES = ["/ops/smtp/", "/ops/organizations/", "/ops/audit-logs/"]
WEB_PAGES = [
    "/console/infrastructure/system/settings/",
    "/console/infrastructure/system/settings/smtp/",
    "/console/audit-logs/",
]


@pytest.mark.parametrize("url", OPS_PAGES + WEB_PAGES)
def test_anonymous_users_are_sent_to_the_login_page(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


@pytest.mark.parametrize("url", WEB_PAGES)
def test_a_partner_user_gets_404_for_web_console_pages(demo, login, url):
    assert login(demo["acme_admin"]).get(url).status_code == 404


@pytest.mark.parametrize("url", OPS_PAGES)
def test_an_organization_user_gets_404_for_ops_console_pages(demo, login, url):
    assert login(demo["prod_admin"]).get(url).status_code == 404


def test_ops_console_navigation_lists_smtp_organizations_and_audit_logs(demo, login):
    html = login(demo["acme_admin"]).get("/ops/organizations/").content.decode()
    for label, url in [
        ("SMTP", "/ops/smtp/"),
        ("Organizations", "/ops/organizations/"),
        ("Audit Logs", "/ops/audit-logs/"),
    ]:
        assert f'href="{url}"' in html and label in html


def test_web_console_navigation_is_infrastructure_system_settings(demo, login):
    html = login(demo["prod_admin"]).get("/console/audit-logs/").content.decode()
    positions = [html.index(word) for word in ("Infrastructure", "System", "Settings")]
    assert positions == sorted(positions)
    assert 'href="/console/infrastructure/system/settings/"' in html
    assert 'href="/console/audit-logs/"' in html


def test_a_partner_sees_only_its_own_organizations(demo, login):
    html = login(demo["acme_admin"]).get("/ops/organizations/").content.decode()
    assert "Acme Production" in html and "Acme Development" in html
    assert "Globex Main" not in html


def test_a_partner_gets_404_for_another_partners_organization_page(demo, login):
    acme = login(demo["acme_admin"])
    own = acme.get(f"/ops/organizations/{demo['acme-prod'].pk}/")
    other = acme.get(f"/ops/organizations/{demo['globex-main'].pk}/")
    assert own.status_code == 200
    assert other.status_code == 404
    assert "Globex" not in other.content.decode()


def test_flag_off_hides_the_smtp_settings_entry_and_its_url(demo, login):
    client = login(demo["dev_admin"])
    settings_page = client.get("/console/infrastructure/system/settings/")
    assert settings_page.status_code == 200
    assert "SMTP Configuration" not in settings_page.content.decode()
    direct = client.get("/console/infrastructure/system/settings/smtp/")
    assert direct.status_code == 404


def test_flag_on_shows_the_smtp_settings_entry(demo, login):
    client = login(demo["prod_admin"])
    settings_page = client.get("/console/infrastructure/system/settings/")
    assert "SMTP Configuration" in settings_page.content.decode()
    assert 'href="/console/infrastructure/system/settings/smtp/"' in (
        settings_page.content.decode()
    )
    assert (
        client.get("/console/infrastructure/system/settings/smtp/").status_code == 200
    )


def test_a_read_only_user_may_look_but_not_change(demo, login):
    user = demo["prod_admin"]
    user.role = Role.READ_ONLY
    user.save()
    client = login(user)
    assert (
        client.get("/console/infrastructure/system/settings/smtp/").status_code == 200
    )
    response = client.post("/console/infrastructure/system/settings/smtp/", {})
    assert response.status_code == 403
    assert "read-only" in response.content.decode()


def test_home_sends_support_staff_to_the_admin(demo, login):
    response = login(demo["support"]).get("/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/"


def test_unknown_api_path_answers_json_404(client):
    response = client.get("/event/v1/unknown")
    assert response.status_code == 404
    assert response.json() == {"error": "Not found."}


NOT_ALLOWED = [
    ("prod_admin", "/ops/smtp/"),
    ("prod_admin", "/ops/organizations/"),
    ("acme_admin", "/console/infrastructure/system/settings/smtp/"),
    ("dev_admin", "/console/infrastructure/system/settings/smtp/"),
]


@pytest.mark.parametrize(("who", "url"), NOT_ALLOWED)
def test_with_debug_a_page_one_may_not_see_is_the_apps_404_page(
    demo, login, settings, who, url
):
    # given DEBUG on, as in make run
    settings.DEBUG = True
    # when
    response = login(demo[who]).get(url)
    # then the app's page, not Django's debug page listing every URL
    assert response.status_code == 404
    html = response.content.decode()
    assert "<h1>Page not found</h1>" in html
    assert "URLconf" not in html and "/ops/smtp/" not in html.split("<main", 1)[1]


def test_with_debug_an_address_that_matches_no_url_keeps_djangos_page(
    demo, login, settings
):
    settings.DEBUG = True
    response = login(demo["acme_admin"]).get("/no-such-page/")
    assert response.status_code == 404
    assert "URLconf" in response.content.decode()
