"""The headers and MIME structure of every system email, as a real SMTP server
receives them and the standard ``email`` package reads them back."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default
from email.utils import parsedate_to_datetime

import pytest

from smtp.delivery import build_message
from smtp.enums import EmailKind, Security
from smtp.models import SmtpConfiguration
from smtp.outbox.sending import outbox_deliver
from smtp.services import send_system_email

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme_sink(demo, smtp_server):
    sink = smtp_server()
    SmtpConfiguration.objects.create(
        partner=demo["acme"],
        host="127.0.0.1",
        port=sink.port,
        security=Security.NONE,
        sender_email="noreply@acme.example",
        sender_name="Acme Ops",
        reply_to="support@acme.example",
    )
    return sink


def deliver_alert(demo, **context):
    email = send_system_email(
        kind=EmailKind.ALERT,
        to="oncall@acme.example",
        context={
            "title": "Disk almost full",
            "message": "Node 3 is at 91%.",
            **context,
        },
        organization=demo["acme-prod"],
    )
    outbox_deliver(email_id=email.pk)
    return email


def test_a_system_email_carries_every_header_system_mail_should(demo, acme_sink):
    email = deliver_alert(demo, link="https://console.example/alerts/7")
    [received] = acme_sink.messages
    message = message_from_bytes(received.data, policy=default)
    assert parsedate_to_datetime(message["Date"]).utcoffset() is not None
    # the Message-ID is on the sender's domain, and is the one the row keeps
    assert message["Message-ID"] == email.message_id
    assert email.message_id.endswith("@acme.example>")
    assert message["From"] == "Acme Ops <noreply@acme.example>"
    assert message["Reply-To"] == "support@acme.example"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["MIME-Version"] == "1.0"
    assert message["Content-Language"] == "en-us"
    # multipart/alternative: the text first, then the HTML, both with the link
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p["Content-Transfer-Encoding"] == "quoted-printable" for p in parts)
    for part in parts:
        assert "https://console.example/alerts/7" in part.get_content()
        assert "Node 3 is at 91%." in part.get_content()


def test_tenant_text_never_adds_a_header(demo, acme_sink):
    deliver_alert(demo, title="Disk\r\nBcc: victim@example.com\x1b[31m")
    [received] = acme_sink.messages
    message = message_from_bytes(received.data, policy=default)
    assert message["Bcc"] is None
    assert message["Subject"] == "[ALERT] Disk Bcc: victim@example.com[31m"
    assert received.rcpt_tos == ["oncall@acme.example"]


def test_mostly_non_latin_text_goes_base64_and_latin_quoted_printable():
    def parts(body: str):
        raw = build_message(
            sender="noreply@acme.example",
            recipient="ops@example.com",
            subject="件名",
            body=body,
            html=f"<p>{body}</p>",
            message_id="<1@acme.example>",
        )
        message = message_from_bytes(raw, policy=default)
        return [
            (p["Content-Transfer-Encoding"], p.get_content().strip())
            for p in message.iter_parts()
        ]

    assert parts("システムからのお知らせです。") == [
        ("base64", "システムからのお知らせです。"),
        ("base64", "<p>システムからのお知らせです。</p>"),
    ]
    assert parts("Grüße aus dem Rechenzentrum.")[0] == (
        "quoted-printable",
        "Grüße aus dem Rechenzentrum.",
    )


def test_the_message_id_of_an_international_sender_domain_is_ascii(demo, smtp_server):
    sink = smtp_server()
    SmtpConfiguration.objects.create(
        partner=demo["acme"],
        host="127.0.0.1",
        port=sink.port,
        security=Security.NONE,
        sender_email="noreply@bücher.example",
    )
    email = send_system_email(
        kind=EmailKind.ALERT,
        to="oncall@acme.example",
        context={"title": "t", "message": "m"},
        partner=demo["acme"],
    )
    assert email.message_id.endswith("@xn--bcher-kva.example>")
