"""Branded system emails: every kind multipart/alternative with the same link in
both parts, the partner's branding and texts (escaped), validated on save."""

from __future__ import annotations

import re
import struct
import zlib
from email import message_from_bytes
from email.policy import default

import pytest

from accounts.services import organization_create, password_reset_send
from audit.models import AuditEvent
from smtp.enums import EmailKind, Security
from smtp.models import EmailTextOverride, PartnerEmailIdentity, SmtpConfiguration
from smtp.outbox.sending import outbox_deliver
from smtp.services import send_system_email, smtp_test_email_request
from tenants.selectors import TenantScope

pytestmark = pytest.mark.django_db

PAGE_URL = "/ops/email-identity/"


def png(width: int = 4, height: int = 2) -> bytes:
    """A real PNG image, written here (no image library needed)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + b"\x1d\x4e\xd8" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def sink(demo, smtp_server):
    server = smtp_server()
    SmtpConfiguration.objects.create(
        partner=demo["acme"],
        host="127.0.0.1",
        port=server.port,
        security=Security.NONE,
        sender_email="noreply@acme.example",
    )
    return server


@pytest.fixture
def branded(demo):
    PartnerEmailIdentity.objects.create(
        partner=demo["acme"],
        product_name="Acme Cloud",
        primary_color="#c2410c",
        footer="Acme Cloud Ltd, 1 Main Street",
        support_email="help@acme.example",
    )


def parts_of(received) -> tuple[str, str]:
    message = message_from_bytes(received.data, policy=default)
    assert message.get_content_type() == "multipart/alternative"
    text, html = message.iter_parts()
    assert (text.get_content_type(), html.get_content_type()) == (
        "text/plain",
        "text/html",
    )
    return text.get_content(), html.get_content()


def deliver_all(emails) -> None:
    for email in emails:
        outbox_deliver(email_id=email.pk)


def test_password_setup_arrives_in_both_parts_with_the_one_time_link(
    demo, sink, branded, monkeypatch
):
    # given: VERIFY, so a new organization's admin gets a password-setup email
    monkeypatch.setenv("ACCOUNT_CREATION_STRATEGY", "VERIFY")
    created = organization_create(
        partner=demo["acme"],
        name="Acme Staging",
        slug="acme-staging",
        admin_email="admin@staging.acme.example",
        admin_password=None,
        actor=demo["acme_admin"],
    )
    assert created.password_pending
    # when: the outbox sends it
    from smtp.models import Email

    deliver_all(Email.objects.filter(kind=EmailKind.PASSWORD_SETUP))
    # then: text first, HTML second, the same link in both, the branding in both
    [received] = sink.messages
    text, html = parts_of(received)
    link = re.search(r"https?://\S+/account/setup/\S+/", text).group(0)
    assert f'href="{link}"' in html
    for part in (text, html):
        assert "Acme Cloud Ltd, 1 Main Street" in part
        assert "help@acme.example" in part
    assert "Acme Cloud" in html and "#c2410c" in html
    assert received.message["Subject"] == "Set your password for Acme Staging"


def test_password_reset_arrives_in_both_parts_with_the_one_time_link(demo, sink):
    password_reset_send(email="partner-admin@acme.example")
    from smtp.models import Email

    deliver_all(Email.objects.filter(kind=EmailKind.PASSWORD_RESET))
    [received] = sink.messages
    text, html = parts_of(received)
    link = re.search(r"https?://\S+/password-reset/\S+/", text).group(0)
    assert f'href="{link}"' in html
    assert received.message["Subject"] == "Reset your Ops Console password"


def test_alerts_and_test_emails_are_multipart_too(demo, sink, branded):
    alert = send_system_email(
        kind=EmailKind.ALERT,
        to="oncall@acme.example",
        context={
            "title": "Disk almost full",
            "message": "Node 3 is at 91%.",
            "link": "https://console.example/alerts/7",
            "severity": "critical",
        },
        organization=demo["acme-prod"],
    )
    test = smtp_test_email_request(
        scope=TenantScope(partner=demo["acme"], organization=None),
        actor=demo["acme_admin"],
        recipient="partner-admin@acme.example",
    )
    deliver_all([alert, test])
    alert_message, test_message = sink.messages
    text, html = parts_of(alert_message)
    assert alert_message.message["Subject"] == "[CRITICAL] Disk almost full"
    assert "https://console.example/alerts/7" in text
    assert 'href="https://console.example/alerts/7"' in html
    # the organization inherits its partner's branding
    assert "Acme Cloud Ltd, 1 Main Street" in html
    text, html = parts_of(test_message)
    assert test_message.message["Subject"] == "Test email from the Acme Cloud"
    assert "This is a test email from the Acme Cloud." in text
    assert "If you can read this, the configuration delivers mail." in html


def test_an_override_with_markup_is_delivered_escaped(demo, sink, login):
    # given: the partner's intro and subject carry markup and a placeholder
    response = login(demo["acme_admin"]).post(
        PAGE_URL,
        {
            "action": "texts",
            "subject_password_reset": "<b>Reset</b> for {{ user_email }}",
            "intro_password_reset": "<script>alert('x')</script> Hi {{ user_name }}!",
        },
    )
    assert response.status_code == 302
    # when: a reset is sent
    password_reset_send(email="partner-admin@acme.example")
    from smtp.models import Email

    deliver_all(Email.objects.filter(kind=EmailKind.PASSWORD_RESET))
    # then: the HTML shows the characters; no tag of the tenant's is markup
    [received] = sink.messages
    text, html = parts_of(received)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; Hi " in html
    assert "<script>alert('x')</script> Hi " in text  # plain text shows it as typed
    assert received.message["Subject"] == (
        "<b>Reset</b> for partner-admin@acme.example"
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("subject_alert", "{{ password }} now", "unknown placeholder {{ password }}"),
        (
            "intro_test",
            "Hi {{user.password}}",
            "unknown placeholder {{ user.password }}",
        ),
        ("intro_test", "{% load static %}", "template tags"),
        ("subject_password_setup", "Line\r\nBcc: x@example.com", "line breaks"),
    ],
)
def test_an_override_breaking_a_rule_is_refused_naming_it_and_nothing_changes(
    demo, login, field, value, message
):
    EmailTextOverride.objects.create(
        partner=demo["acme"], kind="alert", subject="Alert: {{ title }}"
    )
    response = login(demo["acme_admin"]).post(
        PAGE_URL,
        {"action": "texts", "subject_alert": "Alert: {{ title }}", field: value},
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "Not saved" in html
    assert message.replace("'", "&#x27;") in html
    assert list(EmailTextOverride.objects.values_list("kind", "subject", "intro")) == [
        ("alert", "Alert: {{ title }}", "")
    ]
    assert not AuditEvent.objects.filter(type="email_identity.updated").exists()


def test_the_partner_uploads_a_logo_that_is_served_by_its_digest(demo, login, client):
    admin = login(demo["acme_admin"])
    logo = png()
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = admin.post(
        PAGE_URL,
        {
            "action": "branding",
            "product_name": "Acme Cloud",
            "primary_color": "#C2410C",
            "logo": SimpleUploadedFile("logo.png", logo, content_type="image/png"),
        },
    )
    assert response.status_code == 302
    identity = PartnerEmailIdentity.objects.get(partner=demo["acme"])
    assert identity.primary_color == "#c2410c"
    assert identity.logo_type == "image/png"
    # served to anyone (mail clients have no session), with its checked type
    served = client.get(f"/email-logo/{demo['acme'].pk}/{identity.logo_digest}")
    assert served.status_code == 200
    assert served["Content-Type"] == "image/png"
    assert served.content == logo
    assert "immutable" in served["Cache-Control"]
    assert client.get(f"/email-logo/{demo['acme'].pk}/{'0' * 64}").status_code == 404


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script/></svg>', "SVG"),
        ("logo.png", b"MZ\x90\x00 not an image", "PNG, JPEG or GIF"),
        ("logo.png", png() + b"\x00" * (100 * 1024), "at most 100 KB"),
    ],
)
def test_a_bad_logo_is_refused_naming_it_and_nothing_changes(
    demo, login, name, data, message
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = login(demo["acme_admin"]).post(
        PAGE_URL,
        {
            "action": "branding",
            "product_name": "Acme Cloud",
            "logo": SimpleUploadedFile(name, data, content_type="image/png"),
        },
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not PartnerEmailIdentity.objects.exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("primary_color", "red; background:url(x)", "Primary colour must be"),
        ("product_name", "Acme\nCloud", "line breaks"),
        ("support_email", "help", "Support address must be an email address"),
    ],
)
def test_bad_branding_is_refused_naming_the_field(demo, login, field, value, message):
    response = login(demo["acme_admin"]).post(
        PAGE_URL, {"action": "branding", field: value}
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not PartnerEmailIdentity.objects.exists()
