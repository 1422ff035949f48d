"""The SMTP client against real aiosmtpd servers: each step, reply, hint and bound."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta
from email import message_from_bytes
from email.policy import default
from email.utils import parsedate_to_datetime

import pytest

from smtp.delivery import SmtpConnection, StepFailed, build_message, deliver
from smtp.models import EmailKind, Security
from smtp.services import send_system_email
from tests.support.smtp_servers import Behaviour, smtp_settings

CANARY = "canary-smtp-pw-Lm3"
USERS = {"mailer@acme.example": CANARY}


def message(to: str = "ops@example.com", message_id: str = "<t-1@opsconsole.test>"):
    return build_message(
        sender="alerts@acme.example",
        recipient=to,
        subject="Test",
        body="Hello from the delivery tests.",
        message_id=message_id,
    )


def send(settings, to: str = "ops@example.com", **options):
    return deliver(
        settings,
        message(to),
        sender=settings.sender_email,
        recipients=[to],
        **options,
    )


def names(outcome) -> list[str]:
    return [step.name for step in outcome.steps]


def failed(outcome):
    step = outcome.failed_step
    assert step is not None, [s.as_dict() for s in outcome.steps]
    return step


def test_plain_server_receives_the_message_step_by_step(smtp_server):
    server = smtp_server()
    outcome = send(smtp_settings(server.port))
    assert outcome.ok
    assert names(outcome) == [
        "resolve",
        "connect",
        "greeting",
        "ehlo",
        "mail_from",
        "rcpt_to",
        "data",
    ]
    assert all(step.status == "ok" for step in outcome.steps)
    assert outcome.steps[2].reply_code == 220
    assert outcome.steps[-1].reply_code == 250
    assert [m.message_id for m in server.messages] == ["<t-1@opsconsole.test>"]
    received = server.messages[0].message
    assert received["Auto-Submitted"] == "auto-generated"
    assert received["From"] == "alerts@acme.example"


def test_starttls_with_a_trusted_certificate(smtp_server, certs, trust_test_ca):
    server = smtp_server(starttls=certs.server)
    outcome = send(smtp_settings(server.port, security=Security.STARTTLS))
    assert outcome.ok, [s.as_dict() for s in outcome.steps]
    assert names(outcome)[:6] == [
        "resolve",
        "connect",
        "greeting",
        "ehlo",
        "tls",
        "ehlo",
    ]
    assert "STARTTLS" in outcome.steps[3].detail
    assert "STARTTLS: TLSv1." in outcome.steps[4].detail
    assert len(server.messages) == 1


def test_starttls_with_a_self_signed_certificate_fails_unless_insecure(
    smtp_server, certs
):
    server = smtp_server(starttls=certs.self_signed)
    outcome = send(smtp_settings(server.port, security=Security.STARTTLS))
    step = failed(outcome)
    assert step.name == "tls"
    assert "self-signed" in step.detail
    assert "tick Skip certificate verification" in step.hint
    assert step.field == "use_insecure"
    assert not outcome.transient
    assert server.messages == []
    insecure = send(
        smtp_settings(server.port, security=Security.STARTTLS, insecure=True)
    )
    assert insecure.ok
    assert "certificate not verified" in insecure.steps[4].detail
    assert len(server.messages) == 1


def test_implicit_tls_on_an_ephemeral_port(smtp_server, certs, trust_test_ca):
    server = smtp_server(implicit_tls=certs.server)
    outcome = send(smtp_settings(server.port, security=Security.SSL))
    assert outcome.ok, [s.as_dict() for s in outcome.steps]
    assert names(outcome)[:4] == ["resolve", "connect", "tls", "greeting"]
    assert "Implicit TLS: TLSv1." in outcome.steps[2].detail
    assert len(server.messages) == 1


def test_an_expired_certificate_is_explained(smtp_server, certs, trust_test_ca):
    server = smtp_server(implicit_tls=certs.expired)
    step = failed(send(smtp_settings(server.port, security=Security.SSL)))
    assert (step.name, step.field) == ("tls", "host")
    assert "expired" in step.detail and "renew" in step.hint


def test_a_certificate_for_another_host_is_explained(smtp_server, certs, trust_test_ca):
    server = smtp_server(starttls=certs.wrong_host)
    step = failed(send(smtp_settings(server.port, security=Security.STARTTLS)))
    assert step.name == "tls"
    assert "not valid for localhost" in step.hint


def test_auth_accepted(smtp_server, certs, trust_test_ca):
    server = smtp_server(starttls=certs.server, users=USERS)
    settings = smtp_settings(
        server.port,
        security=Security.STARTTLS,
        username="mailer@acme.example",
        password=CANARY,
    )
    outcome = send(settings)
    assert outcome.ok
    auth = next(step for step in outcome.steps if step.name == "auth")
    assert auth.reply_code == 235
    assert "AUTH" in outcome.steps[5].detail  # offered after STARTTLS


def test_auth_refused_says_535_with_the_hint_and_no_credentials(
    smtp_server, certs, trust_test_ca
):
    server = smtp_server(starttls=certs.server, users=USERS)
    settings = smtp_settings(
        server.port,
        security=Security.STARTTLS,
        username="mailer@acme.example",
        password="wrong-" + CANARY,
    )
    outcome = send(settings)
    step = failed(outcome)
    assert (step.name, step.reply_code, step.field) == ("auth", 535, "password")
    assert "auth failed (535)" in step.detail
    assert "refused the username or password" in step.hint
    assert not outcome.transient
    assert server.messages == []
    transcript = json.dumps([s.as_dict() for s in outcome.steps])
    secret = "wrong-" + CANARY
    for form in (
        secret,
        base64.b64encode(secret.encode()).decode(),
        base64.b64encode(f"\0mailer@acme.example\0{secret}".encode()).decode(),
    ):
        assert form not in transcript


def test_starttls_required_but_not_offered_fails_without_falling_back(smtp_server):
    server = smtp_server()  # no STARTTLS
    outcome = send(smtp_settings(server.port, security=Security.STARTTLS))
    step = failed(outcome)
    assert (step.name, step.field) == ("tls", "use_tls")
    assert "does not offer STARTTLS" in step.detail
    assert "no fall-back to plain text" in step.hint
    assert not outcome.transient
    assert server.messages == []


def test_implicit_tls_against_a_plain_port_says_choose_starttls(smtp_server):
    server = smtp_server()
    step = failed(send(smtp_settings(server.port, security=Security.SSL)))
    assert (step.name, step.field) == ("tls", "security")
    assert "wrong version number" in step.detail
    assert "speaks plain SMTP first" in step.hint
    assert "choose Security: STARTTLS" in step.hint


def test_plain_client_against_implicit_tls_port_hints_at_implicit_tls(
    smtp_server, certs, settings
):
    settings.SMTP_TIMEOUT = 1
    server = smtp_server(implicit_tls=certs.server)
    step = failed(send(smtp_settings(server.port, security=Security.STARTTLS)))
    assert step.name == "greeting"
    assert "implicit TLS" in step.hint


def test_a_closed_port_is_a_transient_connect_failure(settings):
    from tests.support.smtp_servers import free_port

    outcome = send(smtp_settings(free_port()))
    step = failed(outcome)
    assert (step.name, step.field) == ("connect", "port")
    assert "connection refused" in step.detail
    assert "check Port" in step.hint
    assert outcome.transient


def test_a_listener_that_never_answers_times_out_within_the_timeout(
    silent_listener, settings
):
    settings.SMTP_TIMEOUT = 1
    started = time.monotonic()
    outcome = send(smtp_settings(silent_listener.port))
    elapsed = time.monotonic() - started
    step = failed(outcome)
    assert step.name == "greeting"
    assert "no greeting within 1 s" in step.detail
    assert outcome.transient
    assert elapsed < 2.5
    assert 900 <= step.duration_ms <= 2000


def test_a_4xx_reply_to_data_is_transient(smtp_server):
    server = smtp_server(behaviour=Behaviour(defer_data_times=1))
    outcome = send(smtp_settings(server.port))
    step = failed(outcome)
    assert (step.name, step.reply_code) == ("data", 451)
    assert outcome.transient
    assert "deferred" in step.hint
    assert send(smtp_settings(server.port)).ok


def test_a_refused_recipient_is_permanent_and_names_the_recipient(smtp_server):
    server = smtp_server(behaviour=Behaviour(refuse_recipients={"nobody@acme.example"}))
    outcome = send(smtp_settings(server.port), to="nobody@acme.example")
    step = failed(outcome)
    assert (step.name, step.reply_code, step.field) == ("rcpt_to", 550, "recipient")
    assert "User unknown" in step.reply
    assert not outcome.transient


def test_a_refused_sender_points_at_the_sender_field(smtp_server):
    server = smtp_server(behaviour=Behaviour(refuse_sender=True))
    step = failed(send(smtp_settings(server.port)))
    assert (step.name, step.reply_code, step.field) == (
        "mail_from",
        553,
        "sender_email",
    )


def test_verify_only_goes_up_to_rcpt_to_then_resets(smtp_server):
    server = smtp_server()
    outcome = deliver(
        smtp_settings(server.port),
        None,
        sender="alerts@acme.example",
        recipients=["ops@example.com"],
        verify_only=True,
    )
    assert outcome.ok
    assert names(outcome)[-3:] == ["mail_from", "rcpt_to", "rset"]
    assert server.messages == []


def test_one_session_sends_many_messages(smtp_server, certs, trust_test_ca):
    server = smtp_server(starttls=certs.server, users=USERS)
    settings = smtp_settings(
        server.port,
        security=Security.STARTTLS,
        username="mailer@acme.example",
        password=CANARY,
    )
    connection = SmtpConnection(settings)
    connection.open()
    try:
        for number in range(3):
            connection.send(
                message(message_id=f"<many-{number}@opsconsole.test>"),
                sender="alerts@acme.example",
                recipients=["ops@example.com"],
            )
        assert connection.alive()
    finally:
        connection.close()
    assert len(server.messages) == 3
    assert server.auth_attempts == 1


def test_open_failure_raises_with_the_steps_so_far(smtp_server):
    from tests.support.smtp_servers import free_port

    connection = SmtpConnection(smtp_settings(free_port()))
    with pytest.raises(StepFailed) as caught:
        connection.open()
    assert [s.name for s in caught.value.steps] == ["resolve", "connect"]


# -- headers and names ---------------------------------------------------------------


def test_the_date_header_has_a_numeric_zone(smtp_server):
    server = smtp_server()
    assert send(smtp_settings(server.port)).ok
    head = server.messages[0].data.decode().split("\r\n\r\n")[0]
    date = next(line for line in head.split("\r\n") if line.startswith("Date: "))
    assert date.endswith(" +0000"), date  # RFC 5322; "GMT" is the obsolete form
    assert parsedate_to_datetime(date[len("Date: ") :]).utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("public_url", "configured", "expected"),
    [
        # `make run`: PUBLIC_URL is an IP address
        ("http://127.0.0.1:8000", "", "[127.0.0.1]"),
        ("http://[::1]:8000", "", "[IPv6:::1]"),
        ("https://ops-console.example.com", "", "ops-console.example.com"),
        ("https://ops-console.example.com", "192.0.2.25", "[192.0.2.25]"),
        ("https://konsole.bücher.example", "", "konsole.xn--bcher-kva.example"),
    ],
)
def test_ehlo_gives_a_host_name_or_an_address_literal_never_a_bare_ip(
    smtp_server, settings, public_url, configured, expected
):
    settings.PUBLIC_URL = public_url
    settings.SMTP_EHLO_NAME = configured
    server = smtp_server()
    assert send(smtp_settings(server.port)).ok
    assert server.handler.ehlo_names == [expected]


@pytest.mark.django_db
def test_message_ids_take_the_address_literal_when_the_console_has_no_name(
    demo, settings
):
    # given: the development defaults (PUBLIC_URL http://127.0.0.1:8000)
    settings.PUBLIC_URL = "http://127.0.0.1:8000"
    settings.SMTP_EHLO_NAME = ""
    # when
    email = send_system_email(
        kind=EmailKind.ALERT,
        to="oncall@acme.example",
        context={"title": "t", "message": "m"},
        organization=demo["acme-prod"],
    )
    # then
    assert email.message_id.endswith("@[127.0.0.1]>"), email.message_id
    parsed = message_from_bytes(message(message_id=email.message_id), policy=default)
    assert parsed["Message-ID"] == email.message_id
    assert parsed["Message-ID"].defects == ()
