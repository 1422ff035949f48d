"""MAIL FROM and RCPT TO quote an address as smtplib does, parser or not."""

from __future__ import annotations

import smtplib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtp.delivery.client import _PLAIN_ADDRESS, envelope_quoted


@settings(max_examples=500, deadline=None)
@given(st.from_regex(_PLAIN_ADDRESS, fullmatch=True))
def test_a_plain_address_is_quoted_as_smtplib_quotes_it(address):
    assert envelope_quoted(address) == smtplib.quoteaddr(address)


@settings(max_examples=500, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_any_text_is_quoted_as_smtplib_quotes_it(text):
    assert envelope_quoted(text) == smtplib.quoteaddr(text)


@pytest.mark.parametrize(
    "address",
    [
        "oncall@example.com",
        "first.last+tag@mail.example.co.uk",
        "o'brien@example.ie",
        "a..b@example.com",
        ".a@example.com",
        "a.@example.com",
        "a@example.com.",
        "a@[192.0.2.1]",
        '"two words"@example.com',
        "Name <name@example.com>",
        "<already@example.com>",
        "ümlaut@exämple.de",
        "a@b@example.com",
        "a b@example.com",
        "a@example.com\r\nRCPT TO:<evil@example.com>",
        "",
    ],
)
def test_odd_addresses_are_quoted_as_smtplib_quotes_them(address):
    assert envelope_quoted(address) == smtplib.quoteaddr(address)
