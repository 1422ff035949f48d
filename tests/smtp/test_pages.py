"""The SMTP pages of both consoles: form rules, write-only password, effective panel."""

from __future__ import annotations

import re

import pytest

from audit.models import AuditEvent
from smtp.models import Security, SmtpConfiguration

pytestmark = pytest.mark.django_db

OPS_URL = "/ops/smtp/"
WEB_URL = "/console/infrastructure/system/settings/smtp/"
CANARY = "canary-pw-Ops-93kd"


def form(**changes) -> dict[str, str]:
    values = {
        "action": "save",
        "host": "smtp.acme.example",
        "port": "587",
        "security": "starttls",
        "username": "mailer@acme.example",
        "password": CANARY,
        "retries": "3",
        "sender_email": "",
    }
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


def rows() -> list[tuple]:
    return [
        (c.host, c.port, c.security, c.username, c.retries, c.sender_email, c.password)
        for c in SmtpConfiguration.objects.order_by("pk")
    ]


def test_partner_admin_saves_the_configuration(demo, login):
    client = login(demo["acme_admin"])
    response = client.post(OPS_URL, form())
    assert response.status_code == 302
    page = client.get(OPS_URL)
    html = page.content.decode()
    assert "SMTP configuration saved." in html
    configuration = SmtpConfiguration.objects.get()
    assert (configuration.host, configuration.security) == (
        "smtp.acme.example",
        Security.STARTTLS,
    )
    assert configuration.password == CANARY
    # The field keeps its value, the password field stays empty, "password set".
    assert 'value="smtp.acme.example"' in html
    assert re.search(r'<input type="password" name="password"[^>]*>', html)
    assert 'name="password" value' not in html
    assert "password set" in html
    assert CANARY not in html


@pytest.mark.parametrize(
    ("changes", "field", "message_part"),
    [
        ({"host": ""}, "host", "Host is required"),
        ({"host": "smtp://x.example"}, "host", "remove &#x27;smtp://&#x27;"),
        ({"host": "x.example:25"}, "host", "must not include a port"),
        ({"port": "70000"}, "port", "1 to 65535"),
        ({"port": "abc"}, "port", "1 to 65535"),
        ({"retries": "11"}, "retries", "0 to 10"),
        ({"password": ""}, "password", "Enter the password for this username"),
        ({"username": ""}, "username", "Enter the username that goes with"),
        ({"security": "none"}, "security", "Without TLS enabled, authentication will"),
        ({"sender_email": "a@b.example\r\nBcc: x@y"}, "sender_email", "line breaks"),
        ({"username": "a@b.example\nX: y"}, "username", "line breaks"),
    ],
)
def test_each_rule_is_refused_by_the_form_and_nothing_changes(
    demo, login, changes, field, message_part
):
    client = login(demo["acme_admin"])
    # given: a stored configuration without credentials
    client.post(OPS_URL, form(host="smtp.before.example", username="", password=""))
    before = rows()
    assert before[0][0] == "smtp.before.example"
    events_before = AuditEvent.objects.count()
    response = client.post(OPS_URL, form(**changes))
    assert response.status_code == 200
    html = response.content.decode()
    assert "The configuration was not saved" in html
    # The message stands next to its field and in the summary at the top.
    field_block = html.split(f'id="field-{field}"', 1)[1].split('id="field-', 1)[0]
    assert message_part in field_block
    assert f'href="#id_{field}"' in html
    assert rows() == before
    assert AuditEvent.objects.count() == events_before
    assert CANARY not in html


def test_a_failed_save_does_not_render_the_typed_password(demo, login):
    response = login(demo["acme_admin"]).post(OPS_URL, form(port="0"))
    assert response.status_code == 200
    assert CANARY not in response.content.decode()


def test_blank_password_keeps_and_a_host_change_asks_for_it_again(demo, login):
    client = login(demo["acme_admin"])
    client.post(OPS_URL, form())
    assert client.post(OPS_URL, form(password="", retries="4")).status_code == 302
    assert SmtpConfiguration.objects.get().password == CANARY
    response = client.post(OPS_URL, form(password="", host="smtp.new.example"))
    assert response.status_code == 200
    assert "Host changed from smtp.acme.example" in response.content.decode()
    configuration = SmtpConfiguration.objects.get()
    assert (configuration.host, configuration.password) == ("smtp.acme.example", CANARY)


def test_turning_insecure_on_asks_for_the_password_again(demo, login):
    client = login(demo["acme_admin"])
    client.post(OPS_URL, form())
    before = rows()
    events_before = AuditEvent.objects.count()
    response = client.post(OPS_URL, form(password="", use_insecure="on"))
    assert response.status_code == 200
    html = response.content.decode()
    field_block = html.split('id="field-password"', 1)[1].split('id="field-', 1)[0]
    assert "Certificate verification turned off (Insecure)" in field_block
    assert rows() == before
    assert not SmtpConfiguration.objects.get().use_insecure
    assert AuditEvent.objects.count() == events_before
    # With the password typed again, the change is saved.
    assert client.post(OPS_URL, form(use_insecure="on")).status_code == 302
    assert SmtpConfiguration.objects.get().use_insecure


def test_a_tls_mode_change_and_insecure_off_keep_the_password(demo, login):
    client = login(demo["acme_admin"])
    client.post(OPS_URL, form(use_insecure="on"))
    response = client.post(OPS_URL, form(password="", security="ssl"))
    assert response.status_code == 302
    configuration = SmtpConfiguration.objects.get()
    assert (configuration.security, configuration.use_insecure) == ("ssl", False)
    assert configuration.password == CANARY


def test_remove_password_action(demo, login):
    client = login(demo["acme_admin"])
    client.post(OPS_URL, form())
    response = client.post(OPS_URL, {"action": "remove_password"}, follow=True)
    assert "Password removed" in response.content.decode()
    configuration = SmtpConfiguration.objects.get()
    assert configuration.password is None and configuration.username == ""


def test_delete_reverts_to_the_controller_default(demo, login, controller_smtp):
    controller_smtp(ADDR="mail.controller.example", PORT="25", USE_TLS="false")
    client = login(demo["acme_admin"])
    client.post(OPS_URL, form())
    assert 'data-effective-source="partner"' in client.get(OPS_URL).content.decode()
    response = client.post(OPS_URL, {"action": "delete"}, follow=True)
    html = response.content.decode()
    assert "the controller default applies again" in html
    assert 'data-effective-source="controller"' in html
    assert not SmtpConfiguration.objects.exists()


def test_the_panel_shows_each_level_field_by_field(demo, login, controller_smtp):
    controller_smtp(
        ADDR="mail.controller.example",
        PORT="587",
        USERNAME="ops@controller.example",
        PASSWORD="controller-canary-pw",
    )
    client = login(demo["acme_admin"])
    html = client.get(OPS_URL).content.decode()
    assert 'data-effective-source="controller"' in html
    assert "mail.controller.example" in html
    assert "controller-canary-pw" not in html
    client.post(OPS_URL, form())
    html = client.get(OPS_URL).content.decode()
    assert 'data-effective-source="partner"' in html
    table = html.split('class="table effective-table"', 1)[1].split("</table>", 1)[0]
    assert "Partner" in table and "Controller default" in table
    assert "smtp.acme.example" in table and "mail.controller.example" in table
    assert "STARTTLS (required)" in table


def test_org_admin_sees_the_inherited_partner_settings_then_its_own(demo, login):
    login(demo["acme_admin"]).post(OPS_URL, form())
    client = login(demo["prod_admin"])
    html = client.get(WEB_URL).content.decode()
    assert 'data-effective-source="partner"' in html
    assert "inherits the partner's settings" in html
    response = client.post(
        WEB_URL, form(host="smtp.prod.example", password="org-" + CANARY)
    )
    assert response.status_code == 302
    html = client.get(WEB_URL).content.decode()
    assert 'data-effective-source="organization"' in html
    assert "inherit-notice" not in html
    assert SmtpConfiguration.objects.get(organization=demo["acme-prod"]).host == (
        "smtp.prod.example"
    )


def test_an_organization_with_the_feature_off_gets_404(demo, login):
    client = login(demo["dev_admin"])
    assert client.get(WEB_URL).status_code == 404
    assert client.post(WEB_URL, form()).status_code == 404
    assert not SmtpConfiguration.objects.exists()


def test_a_read_only_partner_user_sees_a_disabled_form_and_cannot_save(demo, login):
    user = demo["acme_admin"]
    user.role = "read_only"
    user.save()
    client = login(user)
    html = client.get(OPS_URL).content.decode()
    assert "<fieldset disabled>" in html
    assert client.post(OPS_URL, form()).status_code == 403
    assert not SmtpConfiguration.objects.exists()


def test_partners_never_see_each_others_configuration(demo, login):
    login(demo["acme_admin"]).post(OPS_URL, form())
    html = login(demo["globex_admin"]).get(OPS_URL).content.decode()
    assert "smtp.acme.example" not in html
    assert 'data-effective-source="partner"' not in html
    assert "no SMTP configuration" in html
