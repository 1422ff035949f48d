"""International addresses: IDNA domains as A-labels, UTF-8 local parts over
SMTPUTF8, and an address that cannot go failing its own email only.

Real aiosmtpd servers (with and without SMTPUTF8), the real delivery engine, and
the real worker for the batch.
"""

from __future__ import annotations

import json
from email import message_from_bytes, policy

import pytest
from django.test import Client

from smtp.delivery import SmtpConnection, StepFailed, build_message, deliver
from smtp.models import Email, EmailKind, EmailStatus, Security, SmtpConfiguration
from smtp.services import (
    SystemEmail,
    send_system_email,
    send_system_emails,
    smtp_config_save,
)
from smtp.validators import SmtpInput, SmtpValidationError
from tenants.selectors import TenantScope
from tests.support.smtp_servers import smtp_settings
from tests.support.worker import wait_until

IDN = "ops@prüfung.example"
IDN_A_LABEL = "ops@xn--prfung-4ya.example"
UTF8 = "jörg@bücher.example"
UTF8_ENVELOPE = "jörg@xn--bcher-kva.example"


def message(to: str, sender: str = "alerts@acme.example", number: int = 0) -> bytes:
    return build_message(
        sender=sender,
        recipient=to,
        subject="Grüße",
        body="Zustellung an eine internationale Adresse.",
        message_id=f"<intl-{number}@opsconsole.test>",
    )


def send(settings, to: str, sender: str = "alerts@acme.example"):
    return deliver(settings, message(to, sender), sender=sender, recipients=[to])


def parsed(received) -> object:
    """A received message as a reader parses it (UTF-8 headers allowed)."""
    return message_from_bytes(received.data, policy=policy.SMTPUTF8)


# -- domains: IDNA ---------------------------------------------------------------------


def test_an_international_domain_goes_as_its_a_label(smtp_server):
    # given: a server without SMTPUTF8 (ASCII only), as most are
    server = smtp_server()
    # when
    outcome = send(smtp_settings(server.port), IDN)
    # then: the envelope and the To header carry the A-label
    assert outcome.ok, [s.as_dict() for s in outcome.steps]
    assert server.handler.rcpt_tos == [IDN_A_LABEL]
    (received,) = server.messages
    assert received.rcpt_tos == [IDN_A_LABEL]
    assert received.data.isascii()
    assert parsed(received)["To"] == IDN_A_LABEL
    assert parsed(received)["Subject"] == "Grüße"
    rcpt = next(s for s in outcome.steps if s.name == "rcpt_to")
    assert rcpt.detail == f"Recipient {IDN} (as {IDN_A_LABEL}) accepted."


def test_domains_follow_uts46_so_capitals_and_sharp_s_reach_the_registered_name(
    smtp_server,
):
    # IDNA 2008 keeps ß (straße and strasse are different domains); Python's
    # IDNA 2003 codec would have sent this to strasse.example.
    server = smtp_server()
    assert send(smtp_settings(server.port), "ops@STRAßE.Example").ok
    assert server.handler.rcpt_tos == ["ops@xn--strae-oqa.example"]


def test_an_international_sender_domain_goes_as_its_a_label(smtp_server):
    server = smtp_server()
    outcome = send(
        smtp_settings(server.port), "ops@example.com", "alerts@bücher.example"
    )
    assert outcome.ok
    (received,) = server.messages
    assert received.mail_from == "alerts@xn--bcher-kva.example"
    assert parsed(received)["From"] == "alerts@xn--bcher-kva.example"


# -- local parts: SMTPUTF8 -------------------------------------------------------------


def test_a_non_ascii_local_part_goes_over_smtputf8_when_offered(smtp_server):
    # given
    server = smtp_server(smtputf8=True)
    # when
    outcome = send(smtp_settings(server.port), UTF8)
    # then: MAIL FROM asks for SMTPUTF8, the domain is still the A-label, and the
    # message (UTF-8 headers, RFC 6532) parses back to the address as written
    assert outcome.ok, [s.as_dict() for s in outcome.steps]
    ((mail_from, options),) = server.handler.mail_froms
    assert mail_from == "alerts@acme.example"
    assert "SMTPUTF8" in options and "BODY=8BITMIME" in options
    assert server.handler.rcpt_tos == [UTF8_ENVELOPE]
    (received,) = server.messages
    assert parsed(received)["To"] == UTF8
    assert parsed(received)["Subject"] == "Grüße"
    assert parsed(received).get_content().strip() == (
        "Zustellung an eine internationale Adresse."
    )


def test_ascii_mail_does_not_ask_for_smtputf8(smtp_server):
    server = smtp_server(smtputf8=True)
    assert send(smtp_settings(server.port), IDN).ok
    ((_, options),) = server.handler.mail_froms
    assert options == []


def test_a_non_ascii_local_part_without_smtputf8_fails_alone_on_the_session(
    smtp_server,
):
    # given: one session to a server without SMTPUTF8
    server = smtp_server()
    connection = SmtpConnection(smtp_settings(server.port))
    connection.open()
    try:
        # when: an email to a non-ASCII local part
        with pytest.raises(StepFailed) as caught:
            connection.send(
                message(UTF8), sender="alerts@acme.example", recipients=[UTF8]
            )
        # then: it fails alone, permanently, at RCPT TO, and nothing of it reached
        # the server
        failure = caught.value
        assert not failure.transient
        step = failure.step
        assert (step.name, step.field) == ("rcpt_to", "recipient")
        assert "does not offer SMTPUTF8" in step.detail
        assert step.hint.startswith(
            "This server cannot deliver to non-ASCII addresses; use an ASCII address"
        )
        assert server.handler.mail_froms == []
        # and the same session sends the next email, after RSET
        assert connection.reset()
        connection.send(
            message("ops@example.com", number=1),
            sender="alerts@acme.example",
            recipients=["ops@example.com"],
        )
    finally:
        connection.close()
    assert [m.rcpt_tos for m in server.messages] == [["ops@example.com"]]
    assert server.connections == 1


def test_a_non_ascii_sender_without_smtputf8_names_sender(smtp_server):
    server = smtp_server()
    outcome = send(smtp_settings(server.port), "ops@example.com", "jörg@acme.example")
    step = outcome.failed_step
    assert (step.name, step.field) == ("mail_from", "sender_email")
    assert "cannot send from non-ASCII addresses; set Sender to an ASCII" in step.hint
    assert not outcome.transient
    assert server.handler.mail_froms == []


def test_a_stored_address_with_an_invalid_domain_fails_alone(smtp_server):
    # An address saved before domains were checked (or from elsewhere): the
    # session refuses it before MAIL FROM, and stays usable.
    server = smtp_server()
    connection = SmtpConnection(smtp_settings(server.port))
    connection.open()
    try:
        with pytest.raises(StepFailed) as caught:
            connection.send(
                message("ops@☃.example"),
                sender="alerts@acme.example",
                recipients=["ops@☃.example"],
            )
        step = caught.value.step
        assert (step.name, step.field) == ("rcpt_to", "recipient")
        assert "☃.example is not a valid international domain name" in step.detail
        assert not caught.value.transient
        assert connection.reset()
        connection.send(
            message(IDN, number=1), sender="alerts@acme.example", recipients=[IDN]
        )
    finally:
        connection.close()
    assert [m.rcpt_tos for m in server.messages] == [[IDN_A_LABEL]]


# -- at input --------------------------------------------------------------------------

VERIFY_URL = "/event/v1/email/config/verification"


def api_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_an_invalid_international_domain_is_a_400_naming_the_field(demo):
    # given
    SmtpConfiguration.objects.create(
        partner=demo["acme"], host="smtp.acme.example", port=587
    )
    client = api_client(demo["acme_admin"])
    # when
    response = client.post(
        VERIFY_URL,
        data=json.dumps({"recipient_email": "ops@☃.example"}),
        content_type="application/json",
    )
    # then
    assert response.status_code == 400
    assert response.json()["fields"] == {
        "recipient_email": [
            "Recipient: ☃.example is not a valid international domain name "
            "(Codepoint U+2603 at position 1 of '☃' not allowed): check its "
            "spelling."
        ]
    }
    assert not Email.objects.exists()


@pytest.mark.django_db
def test_international_addresses_are_accepted_at_input(demo):
    SmtpConfiguration.objects.create(
        partner=demo["acme"], host="smtp.acme.example", port=587
    )
    client = api_client(demo["acme_admin"])
    response = client.post(
        VERIFY_URL,
        data=json.dumps({"recipient_email": UTF8, "sender_email": IDN}),
        content_type="application/json",
    )
    assert response.status_code == 202, response.content
    email = Email.objects.get()
    assert (email.recipient, email.sender) == (UTF8, IDN)


@pytest.mark.django_db
def test_a_sender_and_a_system_email_with_an_invalid_domain_are_refused(demo):
    scope = TenantScope(partner=demo["acme"], organization=None)
    with pytest.raises(SmtpValidationError) as saved:
        smtp_config_save(
            scope=scope,
            data=SmtpInput(host="smtp.acme.example", sender_email="alerts@bü☃.example"),
            actor=demo["acme_admin"],
        )
    assert (
        "Sender: bü☃.example is not a valid international domain name"
        in (saved.value.errors["sender_email"][0])
    )
    with pytest.raises(SmtpValidationError) as system:
        send_system_email(
            kind=EmailKind.ALERT,
            to="oncall@a..example",
            context={"title": "t", "message": "m"},
            partner=demo["acme"],
        )
    assert system.value.errors["to"] == [
        "Recipient must be an email address, e.g. ops@example.com."
    ]
    with pytest.raises(SmtpValidationError) as idna_refused:
        send_system_email(
            kind=EmailKind.ALERT,
            to="oncall@x\u200d.example",
            context={"title": "t", "message": "m"},
            partner=demo["acme"],
        )
    assert "not a valid international domain name" in idna_refused.value.errors["to"][0]
    assert not Email.objects.exists()
    assert not SmtpConfiguration.objects.exists()


# -- a batch with the real worker ------------------------------------------------------


def test_a_batch_with_an_undeliverable_address_delivers_the_rest_once(
    worker, demo, smtp_server
):
    # given: a server without SMTPUTF8, and an alert to four people, one of
    # whom has a non-ASCII local part
    server = smtp_server()
    SmtpConfiguration.objects.create(
        partner=demo["acme"],
        host="127.0.0.1",
        port=server.port,
        security=Security.NONE,
        retries=3,
    )
    recipients = [
        "oncall1@acme.example",
        IDN,
        "jörg@acme.example",
        "oncall3@acme.example",
    ]
    # when
    emails = send_system_emails(
        [
            SystemEmail(
                EmailKind.ALERT,
                to,
                {"title": "Disk full", "message": "m"},
                organization=demo["acme-prod"],
            )
            for to in recipients
        ]
    )

    def all_final():
        return all(
            e.is_final for e in Email.objects.filter(pk__in=[e.pk for e in emails])
        )

    wait_until(all_final, timeout=30)
    # then: three delivered once each, over one connection
    by_recipient = {
        e.recipient: e for e in Email.objects.filter(pk__in=[e.pk for e in emails])
    }
    assert sorted(rcpt for m in server.messages for rcpt in m.rcpt_tos) == sorted(
        ["oncall1@acme.example", IDN_A_LABEL, "oncall3@acme.example"]
    )
    for to in ("oncall1@acme.example", IDN, "oncall3@acme.example"):
        assert by_recipient[to].status == EmailStatus.SENT
        assert by_recipient[to].attempts == 1
    # and the fourth failed alone, at once, at its own step, with the reason
    bad = by_recipient["jörg@acme.example"]
    assert bad.status == EmailStatus.FAILED
    assert bad.attempts == 1
    assert (bad.failed_step, bad.error_field) == ("rcpt_to", "recipient")
    assert "cannot deliver to non-ASCII addresses" in bad.hint
    # (the session was reset after it, and went on)
    assert server.connections == 1
    assert server.handler.resets == 1
    assert "jörg@acme.example" not in server.handler.rcpt_tos
