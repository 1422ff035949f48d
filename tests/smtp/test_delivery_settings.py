"""Delivery limits and failover on the SMTP pages and in the API: saved, shown
with the values in effect, and refused with the field named when wrong."""

from __future__ import annotations

import json
import re

import pytest

from audit.models import AuditEvent
from smtp.models import Security, SmtpConfiguration, SmtpDraft
from smtp.services import smtp_test_email_request
from smtp.validators import SmtpInput
from tenants.selectors import TenantScope
from tests.smtp.test_api import CURL_CONTENT_TYPE, cookie_client, documented_body
from tests.smtp.test_pages import OPS_URL, WEB_URL, form

pytestmark = pytest.mark.django_db

URL = "/event/v1/email/config"


def post(client, **smtp_config):
    return client.post(
        URL, data=documented_body(**smtp_config), content_type=CURL_CONTENT_TYPE
    )


def partner_configuration(demo, **fields) -> SmtpConfiguration:
    return SmtpConfiguration.objects.create(
        partner=demo["acme"],
        host="smtp.acme.example",
        port=587,
        security=Security.STARTTLS,
        **fields,
    )


def stored() -> list[tuple]:
    return list(
        SmtpConfiguration.objects.order_by("pk").values_list(
            "host", "messages_per_minute", "max_connections", "failover"
        )
    )


# -- API -----------------------------------------------------------------------------


def test_the_api_saves_and_returns_limits_and_failover(demo):
    partner_configuration(demo)
    client = cookie_client(demo["prod_admin"])
    # when: the organization saves its limits and turns failover on
    response = post(
        client,
        host="smtp.prod.example",
        messages_per_minute=30,
        max_connections=2,
        failover=True,
    )
    # then
    assert response.status_code == 201, response.content
    smtp_config = response.json()["email_config"]["smtp_config"]
    assert (
        smtp_config["messages_per_minute"],
        smtp_config["effective_messages_per_minute"],
        smtp_config["max_connections"],
        smtp_config["effective_max_connections"],
        smtp_config["failover"],
    ) == (30, 30, 2, 2, True)
    own = SmtpConfiguration.objects.get(organization=demo["acme-prod"])
    assert (own.messages_per_minute, own.max_connections, own.failover) == (
        30,
        2,
        True,
    )
    # and GET shows them, with the values in effect and where emails fail over
    body = client.get(URL).json()
    assert body["email_config"]["smtp_config"]["messages_per_minute"] == 30
    effective = body["effective"]
    assert effective["source"] == "organization"
    assert (
        effective["messages_per_minute"],
        effective["max_connections"],
        effective["failover"],
        effective["failover_to"],
    ) == (30, 2, True, "partner")
    # and the audit event of the change has them
    created = AuditEvent.objects.get(type="smtp_config.created")
    changes = created.detail["changes"]
    assert changes["messages_per_minute"] == [None, 30]
    assert changes["max_connections"] == [None, 2]
    assert changes["failover"] == [None, True]


def test_omitted_limits_are_the_defaults_and_failover_is_off(demo, settings):
    settings.SMTP_DEFAULT_MESSAGES_PER_MINUTE = 120
    settings.SMTP_DEFAULT_MAX_CONNECTIONS = 3
    client = cookie_client(demo["acme_admin"])
    assert post(client, messages_per_minute=10, failover=True).status_code == 201
    # the documented body, without the new keys, replaces them with the defaults
    response = post(client)
    assert response.status_code == 200
    smtp_config = response.json()["email_config"]["smtp_config"]
    assert (smtp_config["messages_per_minute"], smtp_config["failover"]) == (
        None,
        False,
    )
    assert smtp_config["effective_messages_per_minute"] == 120
    assert smtp_config["effective_max_connections"] == 3
    effective = response.json()["effective"]
    assert (effective["messages_per_minute"], effective["max_connections"]) == (120, 3)
    assert effective["failover_to"] is None
    updated = AuditEvent.objects.filter(type="smtp_config.updated").get()
    assert updated.detail["changes"]["messages_per_minute"] == [10, None]
    assert updated.detail["changes"]["failover"] == [True, False]


def test_zero_means_no_limit_and_null_the_default(demo):
    client = cookie_client(demo["acme_admin"])
    response = post(client, messages_per_minute=0, max_connections=None)
    assert response.status_code == 201, response.content
    smtp_config = response.json()["email_config"]["smtp_config"]
    assert smtp_config["messages_per_minute"] == 0
    assert smtp_config["effective_messages_per_minute"] == 0
    assert smtp_config["max_connections"] is None
    assert smtp_config["effective_max_connections"] == 4


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("messages_per_minute", -1, "from 0 (no limit) to 1,000,000"),
        ("messages_per_minute", 1_000_001, "from 0 (no limit) to 1,000,000"),
        ("messages_per_minute", "30", "Messages per minute must be a whole number"),
        ("messages_per_minute", 2.5, "Messages per minute must be a whole number"),
        ("messages_per_minute", True, "Messages per minute must be a whole number"),
        ("max_connections", -5, "Max concurrent connections must be"),
        ("max_connections", 1001, "from 0 (no limit) to 1000"),
        ("max_connections", "many", "Max concurrent connections must be"),
        ("failover", "yes", "Failover must be on or off"),
        ("failover", 1, "Failover must be on or off"),
    ],
)
def test_the_api_refuses_a_wrong_limit_naming_the_field(demo, name, value, words):
    client = cookie_client(demo["acme_admin"])
    assert post(client, messages_per_minute=50).status_code == 201
    before = stored()
    response = post(client, host="smtp.changed.example", **{name: value})
    assert response.status_code == 400
    body = response.json()
    messages = body["fields"][f"email_config.smtp_config.{name}"]
    assert any(words in message for message in messages), messages
    # nothing changed
    assert stored() == before


def test_failover_with_no_level_below_is_saved_with_a_note(demo):
    response = post(cookie_client(demo["acme_admin"]), failover=True)
    assert response.status_code == 201
    assert SmtpConfiguration.objects.get().failover is True
    assert any("no level below this one" in note for note in response.json()["notes"])


def test_the_openapi_schema_describes_limits_and_failover(demo, login):
    response = login(demo["acme_admin"]).get("/api/schema/", {"format": "json"})
    schema = json.loads(response.content)
    components = schema["components"]["schemas"]
    smtp_in = components["SmtpConfigInputRequest"]["properties"]
    assert {"messages_per_minute", "max_connections", "failover"} <= set(smtp_in)
    assert smtp_in["messages_per_minute"].get("nullable") is True
    smtp_out = components["SmtpConfigOutput"]["properties"]
    assert {
        "messages_per_minute",
        "effective_messages_per_minute",
        "max_connections",
        "effective_max_connections",
        "failover",
    } <= set(smtp_out)
    effective = components["EffectiveOutput"]["properties"]
    assert {"messages_per_minute", "max_connections", "failover_to"} <= set(effective)


# -- pages -----------------------------------------------------------------------------


def test_the_organization_page_offers_limits_and_failover_to_the_partner(demo, login):
    partner_configuration(demo)
    html = login(demo["prod_admin"]).get(WEB_URL).content.decode()
    assert 'name="messages_per_minute"' in html
    assert 'name="max_connections"' in html
    assert "Default: 4 (SMTP_DEFAULT_MAX_CONNECTIONS), used when empty." in html
    assert "Default: no limit (SMTP_DEFAULT_MESSAGES_PER_MINUTE)" in html
    assert (
        "Fail over to the partner configuration when this server cannot be reached"
        in html
    )


def test_without_a_partner_configuration_the_organization_fails_over_to_the_controller(
    demo, login, controller_smtp
):
    controller_smtp(ADDR="mail.controller.example", PORT="25", USE_TLS="false")
    html = login(demo["prod_admin"]).get(WEB_URL).content.decode()
    assert "Fail over to the controller default configuration" in html


def test_a_partner_without_controller_defaults_has_no_failover_choice(demo, login):
    html = login(demo["acme_admin"]).get(OPS_URL).content.decode()
    assert 'name="failover"' not in html
    assert 'id="no-failover"' in html
    assert 'name="messages_per_minute"' in html


def test_a_page_without_the_failover_choice_keeps_the_stored_one(demo, login):
    # given: failover turned on over the API while no level below exists
    assert post(cookie_client(demo["acme_admin"]), failover=True).status_code == 201
    # when: the partner admin saves the page, which does not offer the choice
    client = login(demo["acme_admin"])
    response = client.post(OPS_URL, form(host="smtp.other.example"))
    assert response.status_code == 302
    # then: the stored choice stays (the page changed only what it shows)
    stored_now = SmtpConfiguration.objects.get()
    assert (stored_now.host, stored_now.failover) == ("smtp.other.example", True)
    assert "smtp_config.updated" in list(
        AuditEvent.objects.values_list("type", flat=True)
    )
    updated = AuditEvent.objects.filter(type="smtp_config.updated").get()
    assert "failover" not in updated.detail["changes"]


def test_the_page_saves_limits_and_failover_and_shows_them_in_effect(demo, login):
    partner_configuration(demo, messages_per_minute=600)
    client = login(demo["prod_admin"])
    response = client.post(
        WEB_URL,
        form(
            host="smtp.prod.example",
            messages_per_minute="30",
            max_connections="0",
            failover="on",
        ),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    own = SmtpConfiguration.objects.get(organization=demo["acme-prod"])
    assert (own.messages_per_minute, own.max_connections, own.failover) == (
        30,
        0,
        True,
    )
    html = client.get(WEB_URL).content.decode()
    assert 'name="messages_per_minute" value="30"' in html
    assert re.search(r'<input type="checkbox" name="failover"[^>]*checked', html)
    # the "in effect" panel: one cell per level
    panel = html.split('id="effective"', 1)[-1]
    row = re.search(r"Messages per minute</th>(.*?)</tr>", panel, re.S)
    assert row, "no Messages per minute row in the panel"
    assert re.findall(r"<td[^>]*>\s*([^<]*?)\s*</td>", row[1])[:2] == ["30", "600"]
    connections = re.search(r"Max concurrent connections</th>(.*?)</tr>", panel, re.S)
    assert "no limit" in connections[1]
    # when: saved again with the box unticked (and the limits emptied)
    assert client.post(WEB_URL, form(host="smtp.prod.example")).status_code == 302
    own.refresh_from_db()
    assert (own.messages_per_minute, own.max_connections, own.failover) == (
        None,
        None,
        False,
    )


@pytest.mark.parametrize(
    ("values", "field", "words"),
    [
        ({"messages_per_minute": "fast"}, "messages_per_minute", "whole number"),
        ({"messages_per_minute": "-3"}, "messages_per_minute", "1,000,000"),
        ({"messages_per_minute": "1000001"}, "messages_per_minute", "1,000,000"),
        ({"max_connections": "2.5"}, "max_connections", "whole number"),
        ({"max_connections": "1001"}, "max_connections", "0 (no limit) to 1000"),
    ],
)
def test_the_page_refuses_a_wrong_limit_naming_the_field(
    demo, login, values, field, words
):
    client = login(demo["acme_admin"])
    assert client.post(OPS_URL, form(messages_per_minute="50")).status_code == 302
    before = stored()
    response = client.post(OPS_URL, form(host="smtp.changed.example", **values))
    assert response.status_code == 200
    html = response.content.decode()
    assert "The configuration was not saved" in html
    error = re.search(rf'id="id_{field}_error">(.*?)</div>', html, re.S)
    assert error and words in error[1], html[:3000]
    # the advanced part is open, so the person sees the field
    assert re.search(r'<details class="advanced"\s+open>', html)
    assert stored() == before


def test_unsaved_limits_go_with_a_test_email_draft(demo):
    # A test of unsaved values carries the limits too (nothing else saved).
    partner_configuration(demo)
    scope = TenantScope(partner=demo["acme"], organization=None)
    email = smtp_test_email_request(
        scope=scope,
        actor=demo["acme_admin"],
        recipient="partner-admin@acme.example",
        verify_only=True,
        form=SmtpInput(
            host="smtp.other.example",
            port=587,
            messages_per_minute=12,
            max_connections=1,
        ),
    )
    draft = SmtpDraft.objects.get(pk=email.draft_id)
    assert (draft.messages_per_minute, draft.max_connections) == (12, 1)
