"""Message bodies as DATA sends them: whatever a template or a tenant wrote,
the parts decode to the text, with lines RFC 2045 and RFC 5321 accept.

Quoted-printable is written by ``binascii``, and by the email package where
binascii would make a line too long (a blank ending a full line); each case
here holds either way.
"""

from __future__ import annotations

import base64
import quopri
import re
from email import message_from_bytes
from email.policy import default

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtp.delivery.message import _encoded_body, build_message

# Characters that make quoted-printable encode, break lines or sit at a line's
# end, mixed with plain text.
_PIECES = st.sampled_from(
    ["a", "word ", "=", " ", "\t", "\n", "\r", "\r\n", ".", "é", "€", "\x00", "\x0c"]
)
_TEXTS = st.lists(
    st.one_of(_PIECES, st.text(max_size=90), st.just("x" * 75)), max_size=40
).map("".join)


def _expected(encoding: str, text: str) -> str:
    """The text the body carries, ending with a line break: quoted-printable
    lines end in CRLF, so each CRLF, CR or LF is one line break; base64
    carries a lone CR."""
    if encoding == "quoted-printable":
        text = re.sub(r"\r\n?", "\n", text)
    text = text.replace("\r\n", "\n")
    text = text if text.endswith("\n") else text + "\n"
    # A CR the appended line break follows reads back as a CRLF.
    return text.replace("\r\n", "\n")


def _decoded(encoding: str, encoded: str) -> str:
    data = encoded.encode("ascii")
    if encoding == "base64":
        return base64.b64decode(data).decode("utf-8").replace("\r\n", "\n")
    return quopri.decodestring(data).decode("utf-8").replace("\r\n", "\n")


def _lines_are_sound(encoded: str) -> None:
    # CRLF only: no bare CR or LF on the wire.
    assert re.search(r"\r(?!\n)|(?<!\r)\n", encoded) is None
    assert encoded.endswith("\r\n")
    assert all(len(line) <= 76 for line in encoded.split("\r\n"))
    assert encoded.isascii()


@settings(max_examples=400, deadline=None)
@given(_TEXTS)
def test_any_text_encodes_to_sound_lines_that_decode_to_it(text):
    encoding, encoded = _encoded_body(text)
    _lines_are_sound(encoded)
    assert _decoded(encoding, encoded) == _expected(encoding, text)


@pytest.mark.parametrize(
    "text",
    [
        # A blank ends a full line: binascii would write 78 characters.
        "x" * 75 + " \n=\n",
        "x" * 75 + "\t\nand é\n",
        # A lone CR, one before a CRLF: each a line break (binascii alone
        # would keep a CR bare).
        "first\rsecond = 2\n",
        "third\r\r\nfourth = 4",
        # A line that is only a dot.
        "=\n.\nend\n",
        # Long lines of escapes, split without cutting one.
        "Grüße aus dem Rechenzentrum. " * 5 + "\n" + "=" * 90 + "\n",
    ],
)
def test_the_cases_binascii_and_the_email_package_differ_on(text):
    encoding, encoded = _encoded_body(text)
    assert encoding == "quoted-printable"
    _lines_are_sound(encoded)
    assert _decoded(encoding, encoded) == _expected(encoding, text)


def test_an_html_part_with_long_lines_and_attributes_reads_back():
    html = (
        '<table role="presentation" style="width:100%;border-collapse:collapse">'
        '<tr><td style="padding:24px;font-family:Arial,sans-serif;color:#111">'
        "Disk usage on node-7 is above 90% — for 10 minutes.</td></tr></table>\n"
    )
    raw = build_message(
        sender="noreply@acme.example",
        recipient="ops@example.com",
        subject="Alert",
        body="Disk usage high.",
        html=html,
        message_id="<1@acme.example>",
    )
    message = message_from_bytes(raw, policy=default)
    text_part, html_part = message.iter_parts()
    assert text_part.get_content() == "Disk usage high."
    assert html_part["Content-Transfer-Encoding"] == "quoted-printable"
    # The line break before a boundary belongs to the boundary.
    assert html_part.get_content() == html.removesuffix("\n")
    payload = html_part.get_payload()
    assert "=3D" in payload  # encoded, not sent as it is
    assert all(len(line) <= 76 for line in payload.splitlines())
