"""The Ops Console's organization pages: what each organization's email goes
through, its own configuration's health, and the way to its audit events."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from smtp.enums import HealthStatus, Security
from smtp.models import SmtpConfiguration

pytestmark = pytest.mark.django_db


def _page(client, organization) -> str:
    response = client.get(f"/ops/organizations/{organization.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def _section(html: str, section_id: str) -> str:
    start = html.index(f'id="{section_id}"')
    return html[start : html.index("</section>", start)]


def _text(html: str) -> str:
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()
    return text.replace("( ", "(").replace(" )", ")")


@pytest.fixture
def partner_config(demo):
    return SmtpConfiguration.objects.create(
        partner=demo["acme"],
        host="smtp.acme.example",
        port=587,
        security=Security.STARTTLS,
        health_status=HealthStatus.OK,
        health_checked_at=timezone.now() - timedelta(minutes=5),
    )


def test_an_organization_without_its_own_shows_the_partners_in_effect(
    demo, login, partner_config
):
    html = _page(login(demo["acme_admin"]), demo["acme-prod"])
    in_effect = _text(_section(html, "org-smtp"))
    assert "Partner: inherited from your SMTP configuration" in in_effect
    assert "smtp.acme.example:587 · STARTTLS (required)" in in_effect
    assert "healthy" in in_effect
    assert 'data-effective-source="partner"' in html
    assert "None: it inherits the configuration in effect above" in _text(
        _section(html, "org-own-smtp")
    )


def test_an_organizations_own_failing_configuration_is_in_effect_and_failing(
    demo, login, partner_config
):
    # given
    SmtpConfiguration.objects.create(
        partner=demo["acme"],
        organization=demo["acme-prod"],
        host="smtp.prod.example",
        port=465,
        security=Security.SSL,
        health_status=HealthStatus.FAILING,
        health_detail="tls: certificate expired",
    )
    # when
    html = _page(login(demo["acme_admin"]), demo["acme-prod"])
    # then
    in_effect = _text(_section(html, "org-smtp"))
    assert "Organization: its own configuration" in in_effect
    assert "smtp.prod.example:465 · Implicit TLS (SMTPS)" in in_effect
    assert "failing health check tls: certificate expired" in in_effect
    own = _text(_section(html, "org-own-smtp"))
    assert "In use yes" in own
    assert "failing health check tls: certificate expired" in own


def test_an_own_configuration_behind_the_feature_switch_is_not_in_use(
    demo, login, partner_config
):
    # given acme-dev, whose SMTP feature is off, with a saved configuration
    assert not demo["acme-dev"].smtp_configuration_enabled
    SmtpConfiguration.objects.create(
        partner=demo["acme"], organization=demo["acme-dev"], host="smtp.dev.example"
    )
    html = _page(login(demo["acme_admin"]), demo["acme-dev"])
    assert "smtp.acme.example:587" in _section(html, "org-smtp")
    own = _text(_section(html, "org-own-smtp"))
    assert "smtp.dev.example" in own
    assert "no: the SMTP configuration feature is off, so it inherits" in own


def test_the_controller_default_in_effect_says_it_is_not_health_checked(
    demo, login, controller_smtp
):
    controller_smtp(ADDR="127.0.0.1", PORT="2525", USE_TLS="false")
    html = _page(login(demo["acme_admin"]), demo["acme-prod"])
    in_effect = _text(_section(html, "org-smtp"))
    assert "Controller default: inherited (the partner has no configuration)" in (
        in_effect
    )
    assert "127.0.0.1:2525 · Off (plain text)" in in_effect
    assert "not checked the periodic check covers saved configurations" in in_effect


def test_no_smtp_at_any_level_is_said(demo, login):
    html = _page(login(demo["acme_admin"]), demo["acme-prod"])
    assert "No level has a usable SMTP configuration" in _section(html, "org-smtp")


def test_the_audit_link_opens_the_organizations_events(demo, login):
    client = login(demo["acme_admin"])
    html = _page(client, demo["acme-prod"])
    href = re.search(r'id="org-audit-link" href="([^"]+)"', html)[1]
    assert href == "/ops/audit-logs/?organization=acme-prod&amp;range=7d"
    audit = client.get(href.replace("&amp;", "&"))
    assert audit.status_code == 200
    assert re.search(r'<option value="acme-prod"\s+selected', audit.content.decode()), (
        "the organization filter is chosen"
    )


def test_the_list_says_what_inherits_inherits_from(demo, login, partner_config):
    html = login(demo["acme_admin"]).get("/ops/organizations/").content.decode()
    assert (
        "An organization without a configuration of its own in use inherits the "
        "partner's configuration (smtp.acme.example:587)"
    ) in _text(html)
    # the paragraph, and the rows of acme-prod and acme-dev
    assert _text(html).count("inherits the partner's") == 3


def test_the_list_names_the_controller_default_when_the_partner_has_none(
    demo, login, controller_smtp
):
    controller_smtp(ADDR="127.0.0.1", PORT="2525", USE_TLS="false")
    html = login(demo["acme_admin"]).get("/ops/organizations/").content.decode()
    assert "inherits the controller default (127.0.0.1:2525)" in _text(html)
