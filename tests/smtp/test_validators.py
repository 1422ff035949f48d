"""The rules of a configuration (shared by the form and the API)."""

from __future__ import annotations

import pytest

from smtp.models import Security, SmtpConfiguration
from smtp.validators import (
    AUTH_WITHOUT_TLS_MESSAGE,
    PasswordAction,
    SmtpInput,
    SmtpValidationError,
    smtp_input_validate,
    validate_host,
)


def valid(**changes) -> SmtpInput:
    values = {
        "host": "smtp.example.com",
        "port": 587,
        "use_tls": True,
        "username": "mailer@example.com",
        "password": "secret-1",
        "retries": 3,
    }
    values.update(changes)
    return SmtpInput(**values)


def errors_of(data: SmtpInput, current=None) -> dict[str, list[str]]:
    with pytest.raises(SmtpValidationError) as caught:
        smtp_input_validate(data, current=current)
    return caught.value.errors


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("smtp.gmail.com", "smtp.gmail.com"),
        ("SMTP.SendGrid.NET.", "smtp.sendgrid.net"),
        ("mail", "mail"),
        ("192.0.2.25", "192.0.2.25"),
        ("2001:DB8::25", "2001:db8::25"),
        ("bücher.example", "bücher.example"),
        ("  smtp.example.com  ", "smtp.example.com"),
    ],
)
def test_valid_hosts_are_accepted_and_normalized(host, expected):
    assert validate_host(host) == expected


@pytest.mark.parametrize(
    ("host", "message_part"),
    [
        ("", "Host is required"),
        ("smtp://mail.example.com", "remove 'smtp://'"),
        ("mail.example.com/path", "must not contain a path"),
        ("mail example.com", "must not contain spaces"),
        ("mail.example.com:587", "enter mail.example.com in Host and 587 in Port"),
        ("user@mail.example.com", "Username"),
        ("[2001:db8::1]", "without brackets"),
        ("mail..example.com", "not a valid domain name"),
        ("-mail.example.com", "not a valid domain name"),
        ("mail_server.example.com", "not a valid domain name"),
        ("999.1.1.1", "not a valid one"),
        ("a" * 64 + ".example.com", "not a valid domain name"),
        ("2001:db8:::1", "not a valid IPv6 address"),
    ],
)
def test_invalid_hosts_are_refused_with_the_fix(host, message_part):
    with pytest.raises(ValueError, match="Host") as caught:
        validate_host(host)
    assert message_part in str(caught.value)


@pytest.mark.parametrize("port", [0, 65536, -1, None])
def test_port_must_be_in_range(port):
    assert "1 to 65535" in errors_of(valid(port=port))["port"][0]


@pytest.mark.parametrize("retries", [-1, 11, None])
def test_retries_must_be_0_to_10(retries):
    assert "0 to 10" in errors_of(valid(retries=retries))["retries"][0]


@pytest.mark.parametrize(
    ("use_tls", "port", "security"),
    [
        (True, 587, Security.STARTTLS),
        (True, 465, Security.SSL),
        (True, 2525, Security.STARTTLS),
        (False, 25, Security.NONE),
    ],
)
def test_security_is_derived_from_use_tls_and_port(use_tls, port, security):
    data = valid(use_tls=use_tls, port=port)
    if not use_tls:
        data = valid(use_tls=False, port=port, username="", password=None)
    assert smtp_input_validate(data, current=None).security == security


def test_an_explicit_security_mode_wins_over_the_port():
    data = valid(port=2465, security="ssl", use_tls=None)
    assert smtp_input_validate(data, current=None).security == Security.SSL


def test_contradicting_use_tls_and_security_is_refused():
    errors = errors_of(valid(use_tls=False, security="starttls"))
    assert "make them agree" in errors["use_tls"][0]


def test_an_unknown_security_mode_is_refused():
    assert "none, starttls, ssl" in errors_of(valid(security="tls1.3"))["security"][0]


def test_authentication_without_tls_is_refused_with_the_documented_reason():
    errors = errors_of(valid(use_tls=False, port=25))
    assert errors["use_tls"] == [AUTH_WITHOUT_TLS_MESSAGE]
    assert "Without TLS enabled, authentication will not work" in errors["use_tls"][0]


def test_username_without_password_is_refused():
    errors = errors_of(valid(password=None))
    assert "Enter the password for this username" in errors["password"][0]


def test_password_without_username_is_refused():
    errors = errors_of(valid(username=""))
    assert "Enter the username that goes with this password" in errors["username"][0]


@pytest.mark.parametrize("field", ["username", "sender_email"])
def test_line_breaks_in_header_bound_values_are_refused(field):
    errors = errors_of(valid(**{field: "a@example.com\r\nBcc: victim@example.com"}))
    assert "must not contain line breaks" in errors[field][0]


def test_sender_must_be_an_address():
    errors = errors_of(valid(sender_email="not an address"))
    assert "Sender must be an email address" in errors["sender_email"][0]


def test_insecure_without_tls_is_refused():
    errors = errors_of(
        valid(use_tls=False, port=25, username="", password=None, use_insecure=True)
    )
    assert "only applies with TLS" in errors["use_insecure"][0]


def test_every_problem_is_reported_at_once():
    errors = errors_of(SmtpInput(host="", port=0, retries=99, sender_email="x"))
    assert set(errors) == {"host", "port", "retries", "sender_email"}


def stored(**fields) -> SmtpConfiguration:
    values = {
        "host": "smtp.example.com",
        "port": 587,
        "security": Security.STARTTLS,
        "username": "mailer@example.com",
        "password": "stored-secret",
    }
    values.update(fields)
    return SmtpConfiguration(**values)


def test_blank_password_keeps_the_stored_one():
    result = smtp_input_validate(valid(password=None), current=stored())
    assert result.password_action == PasswordAction.KEEP


@pytest.mark.parametrize(
    ("change", "message_part"),
    [
        ({"host": "smtp.other.example"}, "Host changed from smtp.example.com"),
        ({"port": 465}, "Port changed from 587"),
        ({"username": "someone@example.com"}, "Username changed"),
    ],
)
def test_a_server_change_without_a_new_password_does_not_reuse_the_stored_one(
    change, message_part
):
    errors = errors_of(valid(password=None, **change), current=stored())
    assert message_part in errors["password"][0]
    assert "only sent to the server" in errors["password"][0]


@pytest.mark.parametrize(
    ("change", "message_part"),
    [
        ({"use_insecure": True}, "Certificate verification turned off (Insecure)"),
        ({"use_tls": False}, "TLS turned off"),
        ({"security": "none", "use_tls": None}, "TLS turned off"),
    ],
)
def test_weaker_server_checks_without_a_new_password_do_not_reuse_the_stored_one(
    change, message_part
):
    errors = errors_of(valid(password=None, **change), current=stored())
    assert message_part in errors["password"][0]
    assert "never with weaker checks" in errors["password"][0]


@pytest.mark.parametrize(
    ("current", "change"),
    [
        # STARTTLS <-> implicit TLS: the certificate is verified either way.
        ({}, {"security": "ssl", "use_tls": None}),
        ({"security": Security.SSL}, {"security": "starttls", "use_tls": None}),
        # Verification turned back on, or left off as it was.
        ({"use_insecure": True}, {"use_insecure": False}),
        ({"use_insecure": True}, {"use_insecure": True}),
    ],
)
def test_security_changes_that_keep_verifying_the_server_keep_the_password(
    current, change
):
    result = smtp_input_validate(
        valid(password=None, **change), current=stored(**current)
    )
    assert result.password_action == PasswordAction.KEEP


def test_a_server_change_with_a_new_password_is_accepted():
    result = smtp_input_validate(
        valid(host="smtp.other.example", password="new-one"), current=stored()
    )
    assert result.password_action == PasswordAction.SET


def test_clearing_the_username_clears_the_stored_password():
    result = smtp_input_validate(
        valid(username="", password=None, host="smtp.other.example"),
        current=stored(),
    )
    assert result.password_action == PasswordAction.CLEAR
    assert result.notes


def test_remove_password_clears_username_and_password():
    result = smtp_input_validate(
        valid(password=None, remove_password=True), current=stored()
    )
    assert result.password_action == PasswordAction.CLEAR
    assert result.username == ""
