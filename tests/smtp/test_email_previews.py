"""Previews: each kind of email as it would be sent, and "send this preview to me"
through the configuration in effect."""

from __future__ import annotations

import html as html_module
from email import message_from_bytes
from email.policy import default

import pytest

from smtp.enums import BRANDED_KINDS, EmailKind, Security
from smtp.models import (
    Email,
    EmailTextOverride,
    PartnerEmailIdentity,
    SmtpConfiguration,
)
from smtp.outbox.sending import outbox_deliver

pytestmark = pytest.mark.django_db


def preview_url(kind: str) -> str:
    return f"/ops/email-identity/preview/{kind}/"


def srcdoc(page: str) -> str:
    """The HTML part, as the page's sandboxed frame shows it."""
    escaped = page.split('srcdoc="', 1)[1].split('"', 1)[0]
    return html_module.unescape(escaped)


@pytest.mark.parametrize("kind", BRANDED_KINDS)
def test_the_preview_shows_the_html_and_the_text_part_of_each_kind(demo, login, kind):
    PartnerEmailIdentity.objects.create(
        partner=demo["acme"],
        product_name="Acme Cloud",
        footer="Acme Cloud Ltd",
        logo=b"\x89PNG\r\n\x1a\n",
        logo_type="image/png",
        logo_digest="d" * 64,
    )
    response = login(demo["acme_admin"]).get(preview_url(kind))
    assert response.status_code == 200
    page = response.content.decode()
    part = srcdoc(page)
    text = html_module.unescape(
        page.split('id="preview-text"', 1)[1].split(">", 1)[1].split("</pre>", 1)[0]
    )
    assert part.startswith("<!DOCTYPE html>") and "Acme Cloud Ltd" in part
    assert "Acme Cloud Ltd" in text
    # the logo is a link by digest (no bytes in the message)
    assert f"/email-logo/{demo['acme'].pk}/{'d' * 64}" in part
    assert "sandbox" in page.split("<iframe", 1)[1].split(">", 1)[0]
    if kind in (EmailKind.PASSWORD_SETUP, EmailKind.PASSWORD_RESET):
        link = next(w for w in text.split() if "example-preview-link" in w)
        assert f'href="{link}"' in part


def test_the_preview_uses_the_saved_subject_and_escapes_the_intro(demo, login):
    EmailTextOverride.objects.create(
        partner=demo["acme"],
        kind=EmailKind.ALERT,
        subject="{{ product_name }} alert: {{ title }}",
        intro="<script>alert(1)</script>",
    )
    page = login(demo["acme_admin"]).get(preview_url("alert")).content.decode()
    assert "Ops Console alert: Disk almost full" in page
    part = srcdoc(page)
    assert "<script>" not in part and "&lt;script&gt;alert(1)&lt;/script&gt;" in part


def test_an_unknown_kind_is_404(demo, login):
    client = login(demo["acme_admin"])
    assert client.get(preview_url("verify")).status_code == 404
    assert client.get(preview_url("nonsense")).status_code == 404


def test_send_this_preview_to_me_arrives_through_the_configuration_in_effect(
    demo, login, smtp_server
):
    # given: the partner's configuration on a real SMTP server
    sink = smtp_server()
    SmtpConfiguration.objects.create(
        partner=demo["acme"],
        host="127.0.0.1",
        port=sink.port,
        security=Security.NONE,
        sender_email="noreply@acme.example",
    )
    client = login(demo["acme_admin"])
    # when: the admin sends the password-reset preview to themselves
    response = client.post(f"{preview_url('password_reset')}send")
    assert response.status_code == 302
    email = Email.objects.get()
    assert (email.kind, email.recipient) == (
        EmailKind.TEST,
        "partner-admin@acme.example",
    )
    assert f"sent={email.pk}" in response["Location"]
    outbox_deliver(email_id=email.pk)
    # then: it arrives, multipart, as previewed
    [received] = sink.messages
    assert received.rcpt_tos == ["partner-admin@acme.example"]
    message = message_from_bytes(received.data, policy=default)
    assert message["Subject"] == "Reset your Ops Console password"
    text, html = (part.get_content() for part in message.iter_parts())
    assert "example-preview-link" in text and "example-preview-link" in html
    page = client.get(response["Location"]).content.decode()
    assert "Preview queued to partner-admin@acme.example" in page


def test_send_to_me_without_a_configuration_in_effect_says_so(demo, login):
    client = login(demo["acme_admin"])
    response = client.post(f"{preview_url('alert')}send", follow=True)
    assert "No SMTP configuration is in effect" in response.content.decode()
    assert not Email.objects.exists()


def test_a_read_only_user_sees_the_preview_but_cannot_send_it(demo, login):
    user = demo["acme_admin"]
    user.role = "read_only"
    user.save()
    client = login(user)
    page = client.get(preview_url("alert")).content.decode()
    assert 'id="preview-html"' in page and 'id="preview-send"' not in page
    assert client.post(f"{preview_url('alert')}send").status_code == 403
    assert not Email.objects.exists()
