"""Failures named by what the server said: aiosmtpd servers replying exactly as
Postfix does (sender restrictions at RCPT TO, STARTTLS required, relay denied),
and TLS mode and port mix-ups, against the real delivery engine."""

from __future__ import annotations

import os
import random

import pytest

from smtp.delivery import build_message, deliver
from smtp.models import Security
from tests.support.smtp_servers import Behaviour, SmtpTestServer, smtp_settings

LOGIN = "mailer@globex.example"
PASSWORD = "canary-diagnosis-pw-R4"
SENDER = "ceo@globex.example"
# Postfix with smtpd_delay_reject = yes (its default) and
# reject_sender_login_mismatch: the sender restriction answers at RCPT TO.
NOT_OWNED = f"553 5.7.1 <{SENDER}>: Sender address rejected: not owned by user {LOGIN}"
NOT_LOGGED_IN = f"553 5.7.1 <{SENDER}>: Sender address rejected: not logged in"


def send(settings, to: str = "ops@example.com"):
    return deliver(
        settings,
        build_message(
            sender=settings.sender_email,
            recipient=to,
            subject="Diagnosis",
            body="Which field is wrong?",
            message_id="<diagnosis@opsconsole.test>",
        ),
        sender=settings.sender_email,
        recipients=[to],
    )


def failed(outcome):
    step = outcome.failed_step
    assert step is not None, [s.as_dict() for s in outcome.steps]
    return step


@pytest.fixture
def well_known_port():
    """``well_known_port(port, **options)``: a test server on that port (465, 587)
    of a loopback address of its own, so that it collides with nothing else."""
    started: list[SmtpTestServer] = []

    def start(port: int, **options) -> SmtpTestServer:
        if os.geteuid() != 0:
            pytest.skip(f"binding port {port} needs root (as in CI)")
        address = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.7"
        server = SmtpTestServer(address=address, port=port, **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


# -- sender restrictions reported at RCPT TO -----------------------------------------


def test_a_sender_not_owned_by_the_login_is_blamed_on_sender_not_recipient(
    smtp_server, certs, trust_test_ca
):
    # given: Postfix with reject_sender_login_mismatch, and a configuration that
    # logs in as mailer@ but sends as ceo@
    server = smtp_server(
        starttls=certs.server,
        users={LOGIN: PASSWORD},
        behaviour=Behaviour(rcpt_reply=NOT_OWNED),
    )
    settings = smtp_settings(
        server.port,
        security=Security.STARTTLS,
        username=LOGIN,
        password=PASSWORD,
        sender=SENDER,
    )
    # when
    outcome = send(settings)
    # then: the step is RCPT TO, but the field is Sender
    step = failed(outcome)
    assert (step.name, step.reply_code, step.field) == ("rcpt_to", 553, "sender_email")
    assert step.reply == NOT_OWNED[4:]
    assert f"refused the sender {SENDER}" in step.hint
    assert "the recipient is not the problem" in step.hint
    assert f"the sender to be the login ({LOGIN}) or one of its verified aliases" in (
        step.hint
    )
    assert "check the address" not in step.hint
    assert not outcome.transient
    assert server.messages == []


def test_a_sender_refused_as_not_logged_in_asks_for_username_and_password(
    smtp_server,
):
    server = smtp_server(behaviour=Behaviour(rcpt_reply=NOT_LOGGED_IN))
    outcome = send(smtp_settings(server.port, sender=SENDER))
    step = failed(outcome)
    assert (step.name, step.reply_code, step.field) == ("rcpt_to", 553, "sender_email")
    assert f"refused the sender {SENDER}" in step.hint
    assert "only from a logged-in client. Enter Username and Password" in step.hint
    assert "verified aliases" not in step.hint  # this configuration has no login
    assert not outcome.transient


def test_a_temporary_sender_refusal_names_sender_and_is_retried(smtp_server):
    reply = f"450 4.1.8 <{SENDER}>: Sender address rejected: Domain not found"
    server = smtp_server(behaviour=Behaviour(rcpt_reply=reply))
    outcome = send(smtp_settings(server.port, sender=SENDER))
    step = failed(outcome)
    assert (step.name, step.reply_code, step.field) == ("rcpt_to", 450, "sender_email")
    assert f"refused the sender {SENDER}" in step.hint
    assert "it is retried" in step.hint
    assert outcome.transient


def test_a_recipient_refusal_in_postfix_words_still_names_the_recipient(smtp_server):
    reply = (
        "550 5.1.1 <nobody@globex.example>: Recipient address rejected: User unknown "
        "in local recipient table"
    )
    server = smtp_server(behaviour=Behaviour(rcpt_reply=reply))
    outcome = send(
        smtp_settings(server.port, sender=SENDER), to="nobody@globex.example"
    )
    step = failed(outcome)
    assert (step.name, step.reply_code, step.field) == ("rcpt_to", 550, "recipient")
    assert "refused the recipient nobody@globex.example" in step.hint
    assert not outcome.transient


def test_a_refusal_that_names_the_sender_is_read_as_a_sender_problem(smtp_server):
    # No "Sender address rejected", but the address in the reply is the sender's
    # (as sent: its domain as A-labels), not the recipient's.
    reply = "550 5.7.1 <ceo@xn--bcher-kva.example>: Access denied"
    server = smtp_server(behaviour=Behaviour(rcpt_reply=reply))
    step = failed(send(smtp_settings(server.port, sender="ceo@bücher.example")))
    assert (step.name, step.field) == ("rcpt_to", "sender_email")
    assert "refused the sender ceo@bücher.example" in step.hint


def test_a_helo_restriction_at_rcpt_names_the_ehlo_name(smtp_server):
    reply = (
        "504 5.5.2 <[127.0.0.1]>: Helo command rejected: need fully-qualified hostname"
    )
    server = smtp_server(behaviour=Behaviour(rcpt_reply=reply))
    step = failed(send(smtp_settings(server.port)))
    assert (step.name, step.field) == ("rcpt_to", "")
    assert "SMTP_EHLO_NAME" in step.hint
    assert "recipient" not in step.hint


def test_a_client_restriction_at_rcpt_names_the_console_address(smtp_server):
    reply = "554 5.7.1 <localhost[127.0.0.1]>: Client host rejected: Access denied"
    server = smtp_server(behaviour=Behaviour(rcpt_reply=reply))
    step = failed(send(smtp_settings(server.port)))
    assert (step.name, step.field) == ("rcpt_to", "")
    assert "refuses mail from this console's network address" in step.hint


def test_relay_access_denied_asks_to_log_in(smtp_server):
    reply = "554 5.7.1 <ops@example.com>: Relay access denied"
    server = smtp_server(behaviour=Behaviour(rcpt_reply=reply))
    step = failed(send(smtp_settings(server.port)))
    assert (step.name, step.reply_code, step.field) == ("rcpt_to", 554, "username")
    assert "relays only for clients that log in" in step.hint


# -- STARTTLS required ---------------------------------------------------------------


def test_starttls_required_at_mail_from_says_turn_on_starttls_not_sender(
    smtp_server, certs
):
    # given: Postfix with smtpd_tls_security_level = encrypt, and TLS off
    server = smtp_server(
        starttls=certs.server, behaviour=Behaviour(require_starttls=True)
    )
    # when
    outcome = send(smtp_settings(server.port, security=Security.NONE))
    # then
    step = failed(outcome)
    assert (step.name, step.reply_code, step.field) == ("mail_from", 530, "use_tls")
    assert step.reply == "5.7.0 Must issue a STARTTLS command first"
    assert "Security: STARTTLS" in step.hint
    assert "Sender" not in step.hint
    assert not outcome.transient


def test_starttls_required_at_auth_says_turn_on_starttls_not_password(
    smtp_server, certs
):
    # given: a server that offers AUTH before STARTTLS but answers it with 530,
    # and trusted controller-level settings that log in without TLS
    server = smtp_server(
        starttls=certs.server,
        users={LOGIN: PASSWORD},
        behaviour=Behaviour(require_starttls=True),
    )
    settings = smtp_settings(
        server.port, security=Security.NONE, username=LOGIN, password=PASSWORD
    )
    # when
    outcome = send(settings)
    # then
    step = failed(outcome)
    assert (step.name, step.reply_code, step.field) == ("auth", 530, "use_tls")
    assert "Security: STARTTLS" in step.hint
    assert "password" not in step.hint.lower()
    assert server.auth_attempts == 0  # the credentials never reached the server


def test_auth_offered_only_after_starttls_says_turn_on_starttls(smtp_server, certs):
    # Postfix's smtpd_tls_auth_only = yes: no AUTH in EHLO before STARTTLS.
    server = smtp_server(starttls=certs.server, users={LOGIN: PASSWORD})
    settings = smtp_settings(
        server.port, security=Security.NONE, username=LOGIN, password=PASSWORD
    )
    step = failed(send(settings))
    assert (step.name, step.field) == ("auth", "use_tls")
    assert "offers AUTH only after STARTTLS" in step.hint


# -- TLS mode and port ---------------------------------------------------------------


def test_starttls_against_port_465_names_implicit_tls(well_known_port, certs, settings):
    # given: an implicit-TLS server on 465, and a configuration in STARTTLS mode
    settings.SMTP_TIMEOUT = 1
    server = well_known_port(465, implicit_tls=certs.server)
    # when
    outcome = send(smtp_settings(465, host=server.address, security=Security.STARTTLS))
    # then: TLS is on already; the mode is what is wrong, and waiting won't help
    step = failed(outcome)
    assert (step.name, step.field) == ("greeting", "security")
    assert "Choose Security: Implicit TLS / SMTPS (security: ssl)" in step.hint
    assert "turn on TLS" not in step.hint and "turn TLS on" not in step.hint
    assert not outcome.transient


def test_starttls_against_an_implicit_tls_port_suggests_implicit_tls(
    smtp_server, certs, settings
):
    settings.SMTP_TIMEOUT = 1
    server = smtp_server(implicit_tls=certs.server)
    outcome = send(smtp_settings(server.port, security=Security.STARTTLS))
    step = failed(outcome)
    assert (step.name, step.field) == ("greeting", "security")
    assert "choose Security: Implicit TLS / SMTPS" in step.hint
    assert "turn TLS on" not in step.hint
    assert outcome.transient  # on another port, it may also be an overloaded server


def test_implicit_tls_against_port_587_says_choose_starttls(well_known_port):
    # given: a server on 587 that greets in plain text (then offers STARTTLS)
    server = well_known_port(587)
    # when
    outcome = send(smtp_settings(587, host=server.address, security=Security.SSL))
    # then
    step = failed(outcome)
    assert (step.name, step.field) == ("tls", "security")
    assert "The server on port 587 speaks plain SMTP first" in step.hint
    assert "choose Security: STARTTLS (security: starttls)" in step.hint
    assert not outcome.transient


def test_a_private_ca_hint_names_the_ca_bundle(smtp_server, certs):
    # given: a certificate from a CA this console was not told about
    server = smtp_server(implicit_tls=certs.server)
    step = failed(send(smtp_settings(server.port, security=Security.SSL)))
    assert (step.name, step.field) == ("tls", "use_insecure")
    assert "private (company) CA" in step.hint
    assert "SMTP_CA_BUNDLE" in step.hint


def test_the_ca_bundle_the_hint_names_fixes_it(smtp_server, certs, trust_test_ca):
    server = smtp_server(implicit_tls=certs.server)
    assert send(smtp_settings(server.port, security=Security.SSL)).ok
