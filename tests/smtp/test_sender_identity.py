"""Sender identity: display name, Reply-To and bounce address, per level, inherited
field by field, and what arrives at a real SMTP server."""

from __future__ import annotations

import json
from email import message_from_bytes
from email.policy import default
from email.utils import parseaddr

import pytest

from smtp.delivery import build_message
from smtp.enums import EmailKind, Level, Security
from smtp.models import SmtpConfiguration
from smtp.outbox.sending import outbox_deliver
from smtp.selectors import smtp_config_effective
from smtp.services import send_system_email, smtp_config_save
from smtp.validators import SmtpInput
from tenants.selectors import TenantScope

pytestmark = pytest.mark.django_db

API_URL = "/event/v1/email/config"
OPS_URL = "/ops/smtp/"
WEB_URL = "/console/infrastructure/system/settings/smtp/"


def save(scope: TenantScope, port: int, **identity):
    return smtp_config_save(
        scope=scope,
        data=SmtpInput(
            host="127.0.0.1", port=port, use_tls=False, retries=0, **identity
        ),
        actor=None,
    ).configuration


def alert(**scope):
    return send_system_email(
        kind=EmailKind.ALERT,
        to="oncall@acme.example",
        context={"title": "Disk almost full", "message": "Node 3 is at 91%."},
        **scope,
    )


def test_the_display_name_arrives_rfc2047_encoded_and_mail_from_is_the_bounce(
    demo, smtp_server
):
    # given: the partner's configuration with a non-ASCII display name
    sink = smtp_server()
    save(
        TenantScope(partner=demo["acme"], organization=None),
        sink.port,
        sender_email="noreply@acme.example",
        sender_name="Acmé Ops",
        reply_to="support@acme.example",
        bounce_address="bounces@acme.example",
    )
    # when: a system email is sent
    email = alert(partner=demo["acme"])
    outbox_deliver(email_id=email.pk)
    # then: the header is encoded on the wire, and reads back as it was typed
    [received] = sink.messages
    raw_head = received.data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    from_line = next(x for x in raw_head.split("\r\n") if x.startswith("From:"))
    assert "=?utf-8?" in from_line and "Acmé" not in from_line
    message = message_from_bytes(received.data, policy=default)
    assert message["From"].addresses[0].display_name == "Acmé Ops"
    assert message["From"].addresses[0].addr_spec == "noreply@acme.example"
    assert parseaddr(str(message["Reply-To"]))[1] == "support@acme.example"
    # the envelope sender is the bare bounce address
    assert received.mail_from == "bounces@acme.example"


def test_without_a_bounce_address_mail_from_is_the_bare_sender(demo, smtp_server):
    sink = smtp_server()
    save(
        TenantScope(partner=demo["acme"], organization=None),
        sink.port,
        sender_email="noreply@acme.example",
        sender_name="Acme Ops",
    )
    outbox_deliver(email_id=alert(partner=demo["acme"]).pk)
    [received] = sink.messages
    assert received.mail_from == "noreply@acme.example"
    assert received.message["From"] == "Acme Ops <noreply@acme.example>"
    assert received.message["Reply-To"] is None


def test_an_organization_inherits_each_empty_identity_field(
    demo, smtp_server, controller_smtp
):
    # given: the controller sets a name and Reply-To, the partner a bounce address
    # and a Reply-To, the organization only its own name
    controller_smtp(
        ADDR="127.0.0.1",
        USE_TLS="false",
        SENDER_NAME="Controller Ops",
        REPLY_TO="help@controller.example",
        BOUNCE_ADDRESS="bounces@controller.example",
    )
    sink = smtp_server()
    save(
        TenantScope(partner=demo["acme"], organization=None),
        sink.port,
        sender_email="noreply@acme.example",
        reply_to="support@acme.example",
        bounce_address="bounces@acme.example",
    )
    save(
        TenantScope(partner=demo["acme"], organization=demo["acme-prod"]),
        sink.port,
        sender_email="noreply@prod.acme.example",
        sender_name="Prod Ops",
    )
    # when: the precedence is read
    effective = smtp_config_effective(
        partner=demo["acme"], organization=demo["acme-prod"]
    )
    # then: field by field, the nearest level that sets it
    assert effective.source == Level.ORGANIZATION
    assert effective.settings.sender_name == "Prod Ops"
    assert effective.settings.reply_to == "support@acme.example"
    assert effective.settings.bounce_address == "bounces@acme.example"
    assert effective.inherited_from("sender_name") is None
    assert effective.inherited_from("reply_to") == Level.PARTNER
    # and what arrives carries the inherited values
    outbox_deliver(email_id=alert(organization=demo["acme-prod"]).pk)
    [received] = sink.messages
    assert received.mail_from == "bounces@acme.example"
    assert received.message["From"] == "Prod Ops <noreply@prod.acme.example>"
    assert received.message["Reply-To"] == "support@acme.example"
    # the partner itself inherits its name from the controller
    partner = smtp_config_effective(partner=demo["acme"])
    assert partner.settings.sender_name == "Controller Ops"
    assert partner.inherited_from("sender_name") == Level.CONTROLLER


def test_a_controller_identity_variable_with_a_line_break_is_named(
    demo, controller_smtp
):
    controller_smtp(ADDR="mail.controller.example", REPLY_TO="a@b.example\nBcc: x@y")
    effective = smtp_config_effective(partner=demo["acme"])
    layer = effective.layer(Level.CONTROLLER)
    assert effective.source == Level.NONE
    assert "FW_EVENT_SMTP_SERVER_REPLY_TO" in layer.skipped_because
    assert "line breaks" in layer.skipped_because


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("sender_name", "Acme\r\nBcc: victim@example.com", "line breaks"),
        ("sender_name", "Acme\x1b[31m", "control characters"),
        ("sender_name", "A" * 101, "at most 100"),
        ("reply_to", "support@acme.example\nBcc: x@y.example", "line breaks"),
        ("reply_to", "not an address", "email address"),
        ("bounce_address", "bounces@acme.example\x07", "control characters"),
    ],
)
def test_bad_identity_input_is_refused_naming_the_field_and_nothing_changes(
    demo, login, field, value, message
):
    # given: a saved configuration
    client = login(demo["acme_admin"])
    body = {"host": "smtp.acme.example", "port": 587, "sender_name": "Acme"}
    first = client.post(
        API_URL,
        json.dumps({"email_config": {"smtp_config": body}}),
        content_type="application/json",
    )
    assert first.status_code == 201
    before = list(SmtpConfiguration.objects.values())
    # when: one identity field is bad
    response = client.post(
        API_URL,
        json.dumps({"email_config": {"smtp_config": {**body, field: value}}}),
        content_type="application/json",
    )
    # then: 400 naming the field, and nothing changed
    assert response.status_code == 400
    errors = response.json()["fields"]
    key = f"email_config.smtp_config.{field}"
    assert list(errors) == [key]
    assert message in " ".join(errors[key])
    assert list(SmtpConfiguration.objects.values()) == before


def test_the_form_saves_the_identity_and_the_panel_shows_what_is_inherited(demo, login):
    partner_admin = login(demo["acme_admin"])
    response = partner_admin.post(
        OPS_URL,
        {
            "action": "save",
            "host": "smtp.acme.example",
            "port": "587",
            "security": "starttls",
            "retries": "3",
            "sender_email": "noreply@acme.example",
            "sender_name": "Acme <Ops> & Co",
            "reply_to": "support@acme.example",
            "bounce_address": "",
        },
    )
    assert response.status_code == 302
    stored = SmtpConfiguration.objects.get()
    assert (stored.sender_name, stored.reply_to, stored.bounce_address) == (
        "Acme <Ops> & Co",
        "support@acme.example",
        "",
    )
    html = login(demo["prod_admin"]).get(WEB_URL).content.decode()
    table = html.split('class="table effective-table"', 1)[1].split("</table>", 1)[0]
    # escaped, and the in-effect column says where each value came from
    assert "Acme &lt;Ops&gt; &amp; Co" in table and "<Ops>" not in table
    assert "support@acme.example" in table
    assert "the sender address" in table  # no bounce address anywhere


def test_display_names_with_specials_are_quoted_and_read_back_unchanged():
    raw = build_message(
        sender="noreply@acme.example",
        recipient="ops@example.com",
        subject="s",
        body="b",
        message_id="<1@acme.example>",
        sender_name='Acme, "Ops" <team>',
    )
    message = message_from_bytes(raw, policy=default)
    assert message["From"].addresses[0].display_name == 'Acme, "Ops" <team>'
    assert message["From"].addresses[0].addr_spec == "noreply@acme.example"


def test_the_api_answers_the_identity_in_effect(demo, login):
    client = login(demo["acme_admin"])
    response = client.post(
        API_URL,
        json.dumps(
            {
                "email_config": {
                    "smtp_config": {
                        "host": "smtp.acme.example",
                        "sender_name": "Acmé Ops",
                        "bounce_address": "bounces@acme.example",
                    }
                }
            }
        ),
        content_type="application/json",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["email_config"]["smtp_config"]["sender_name"] == "Acmé Ops"
    assert body["effective"]["bounce_address"] == "bounces@acme.example"
    assert body["effective"]["reply_to"] == ""
    assert Security(body["effective"]["security"]) == Security.STARTTLS
