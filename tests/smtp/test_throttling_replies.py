"""Which replies say that a server is throttling this client, and what a person
is told about them."""

from __future__ import annotations

import pytest

from smtp.delivery.hints import (
    THROTTLED,
    THROTTLING_HINT,
    Refusal,
    diagnose,
    throttling,
)
from tests.support.smtp_servers import smtp_settings

THROTTLING_REPLIES = [
    (421, "4.7.0 throttled, try again later"),
    (421, "mx.example Service not available, closing transmission channel"),
    (432, "4.3.2 Concurrent connections limit exceeded"),
    (432, "4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded"),
    (451, "4.7.500 Server busy, throttled"),
    (451, "4.7.0 Message throttling in effect"),
    (452, "4.5.3 Too many recipients"),
    (450, "4.3.2 Concurrent connections limit exceeded. Visit https://aka.ms/x"),
    (
        451,
        "4.7.0 Message submission rate for this client has exceeded the "
        "configured limit",
    ),
    (450, "4.2.1 Too many messages sent recently, please slow down"),
    (451, "Rate limit exceeded for this account"),
    (
        450,
        "4.2.1 The user you are trying to contact is receiving mail at a rate "
        "that prevents additional messages from being delivered",
    ),
    (421, "4.7.28 Our system has detected an unusual rate of unsolicited mail"),
    (450, "4.7.28 Gmail has detected an unusual rate of mail"),
    (454, "Too many connections from your IP"),
]

NOT_THROTTLING = [
    (451, "4.7.1 Greylisted, please try again later"),
    (451, "4.3.0 Temporary local problem"),
    (452, "4.2.2 Mailbox full"),
    (450, "4.1.8 Sender address rejected: Domain not found"),
    (550, "5.7.1 rate limit exceeded"),  # permanent: never deferred for ever
    (554, "5.7.28 throttled"),
    (550, "5.1.1 User unknown"),
    (250, "2.0.0 throttled"),
    (None, "throttled"),
    (451, "4.7.280 something else"),
]


@pytest.mark.parametrize(("code", "text"), THROTTLING_REPLIES)
def test_throttling_replies_are_recognised(code, text):
    assert throttling(code, text)


@pytest.mark.parametrize(("code", "text"), NOT_THROTTLING)
def test_other_replies_are_not_throttling(code, text):
    assert not throttling(code, text)


@pytest.mark.parametrize("step", ["mail_from", "rcpt_to", "data"])
def test_a_throttling_refusal_tells_to_lower_messages_per_minute(step):
    diagnosis = diagnose(
        Refusal(
            step=step,
            code=421,
            text="4.7.0 throttled",
            server=smtp_settings(25),
            sender="alerts@acme.example",
            recipient="oncall@acme.example",
        )
    )
    assert diagnosis.transient
    assert diagnosis.code == THROTTLED
    assert diagnosis.hint.startswith(THROTTLING_HINT)
    assert "lower Messages per minute" in diagnosis.hint


def test_greylisting_keeps_its_own_explanation():
    diagnosis = diagnose(
        Refusal(
            step="rcpt_to",
            code=451,
            text="4.7.1 Greylisted, please try again later",
            server=smtp_settings(25),
            recipient="oncall@acme.example",
        )
    )
    assert diagnosis.code != THROTTLED
    assert "throttling" not in diagnosis.hint
