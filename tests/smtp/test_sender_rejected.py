"""Sender rejected, explained: servers that refuse the sender at MAIL FROM or after
DATA (ownership, verification) give a hint naming the field to fix."""

from __future__ import annotations

from dataclasses import replace

import pytest

from smtp.delivery import build_message, deliver
from smtp.enums import EmailKind, EmailStatus, Security
from smtp.models import SmtpConfiguration
from smtp.outbox.sending import outbox_deliver
from smtp.services import send_system_email
from tests.support.smtp_servers import Behaviour, smtp_settings

LOGIN = "mailer@acme.example"
PASSWORD = "canary-sender-pw-K2"
NOT_OWNED = "553 5.7.1 Sender address rejected: not owned by user"
NOT_VERIFIED = (
    "554 Message rejected: Email address is not verified. The following "
    "identities failed the check in region EU-WEST-1: noreply@acme.example"
)


def send(settings):
    return deliver(
        settings,
        build_message(
            sender=settings.sender_email,
            recipient="ops@example.com",
            subject="Sender?",
            body="Who may send this?",
            message_id="<sender@opsconsole.test>",
        ),
        sender=settings.envelope_sender(),
        recipients=["ops@example.com"],
    )


def test_a_553_at_mail_from_names_sender_and_the_login_rule(
    smtp_server, certs, trust_test_ca
):
    # given: a server that logs the account in, then refuses its sender
    server = smtp_server(
        starttls=certs.server,
        users={LOGIN: PASSWORD},
        behaviour=Behaviour(refuse_sender=True),
    )
    settings = smtp_settings(
        server.port,
        security=Security.STARTTLS,
        username=LOGIN,
        password=PASSWORD,
        sender="noreply@acme.example",
    )
    # when
    outcome = send(settings)
    # then: the step is MAIL FROM, the field Sender, and the hint says why
    step = outcome.failed_step
    assert (step.name, step.reply_code, step.field) == (
        "mail_from",
        553,
        "sender_email",
    )
    assert "refused the sender noreply@acme.example" in step.hint
    assert "set Sender to an address this account may send as" in step.hint
    assert f"the sender to be the login ({LOGIN}) or one of its verified aliases" in (
        step.hint
    )
    assert PASSWORD not in step.hint
    assert not outcome.transient
    assert server.messages == []


def test_without_login_the_hint_names_sender_but_not_the_login_rule(smtp_server):
    server = smtp_server(behaviour=Behaviour(refuse_sender=True))
    outcome = send(smtp_settings(server.port, sender="noreply@acme.example"))
    step = outcome.failed_step
    assert (step.name, step.field) == ("mail_from", "sender_email")
    assert "Sender" in step.hint and "verified aliases" not in step.hint


def test_a_refused_bounce_address_names_the_bounce_address(smtp_server):
    server = smtp_server(behaviour=Behaviour(refuse_sender=True))
    settings = replace(
        smtp_settings(server.port, sender="noreply@acme.example"),
        bounce_address="bounces@acme.example",
    )
    outcome = send(settings)
    step = outcome.failed_step
    assert (step.name, step.field) == ("mail_from", "bounce_address")
    assert "bounces@acme.example" in step.hint and "Bounce address" in step.hint
    assert server.handler.mail_froms[0][0] == "bounces@acme.example"


def test_an_unverified_sender_refused_after_data_names_sender(smtp_server):
    server = smtp_server(behaviour=Behaviour(data_reply=NOT_VERIFIED))
    outcome = send(smtp_settings(server.port, sender="noreply@acme.example"))
    step = outcome.failed_step
    assert (step.name, step.reply_code, step.field) == ("data", 554, "sender_email")
    assert "refused the sender noreply@acme.example" in step.hint


@pytest.mark.django_db
def test_a_system_email_refused_at_mail_from_keeps_the_sender_hint(demo, smtp_server):
    # given: the partner's configuration on a server that refuses its sender
    server = smtp_server(behaviour=Behaviour(refuse_sender=True))
    SmtpConfiguration.objects.create(
        partner=demo["acme"],
        host="127.0.0.1",
        port=server.port,
        security=Security.NONE,
        sender_email="noreply@acme.example",
    )
    email = send_system_email(
        kind=EmailKind.ALERT,
        to="oncall@acme.example",
        context={"title": "t", "message": "m"},
        partner=demo["acme"],
    )
    # when: the outbox sends it
    outbox_deliver(email_id=email.pk)
    # then: it failed at once (5xx), with the hint and the field on the row
    email.refresh_from_db()
    assert email.status == EmailStatus.FAILED
    assert (email.failed_step, email.reply_code) == ("mail_from", 553)
    assert email.error_field == "sender_email"
    assert "Set Sender".lower() in email.hint.lower()
