"""The message itself: the bytes DATA sends."""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from email.charset import QP, Charset
from email.header import Header
from email.utils import formatdate, quote

from core.addresses import AddressError, wire_address

# UTF-8 text, quoted-printable: readable in the raw message, safe over 7-bit.
_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP
# Text quoted-printable leaves as it is, given short lines without trailing
# blanks: printable ASCII but "=", tabs and line breaks.
_QP_AS_IS = re.compile(r"[\x20-\x3c\x3e-\x7e\t\n]*")


_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _has_controls(value: str) -> bool:
    return _CONTROLS.search(value) is not None


def _header_value(name: str, value: str) -> str:
    """A header value for the wire: printable ASCII as it is, anything else
    (non-ASCII, or a stray control character) RFC 2047 encoded words."""
    if "\r" in value or "\n" in value:
        raise ValueError(f"{name} must not contain a line break")
    if value.isascii() and not _has_controls(value):
        return value
    return Header(value, "utf-8", header_name=name).encode(linesep="\r\n")


def _address_header(name: str, address: str) -> tuple[str, bool]:
    """An address header's value, and whether it is UTF-8 (RFC 6532).

    RFC 2047 does not apply to an address itself (an encoded word is not allowed
    in an addr-spec), so a domain goes as A-labels, which every reader accepts.
    A local part that is not ASCII has no ASCII form: the header is UTF-8, and
    the session sends it only over SMTPUTF8.
    """
    if "\r" in address or "\n" in address:
        raise ValueError(f"{name} must not contain a line break")
    try:
        wire = wire_address(address)
    except AddressError:
        # The session refuses this address before MAIL FROM: the message is
        # never sent.
        return _header_value(name, address), False
    return wire.header, wire.utf8


# RFC 5322 specials: a display name with one of them goes as a quoted string.
_SPECIALS = set('()<>[]:;@\\,."')


def _display_name(name: str) -> str:
    """A display name for an address header: ASCII as an atom or a quoted
    string, anything else RFC 2047 encoded words (never raw tenant text)."""
    if "\r" in name or "\n" in name:
        raise ValueError("A display name must not contain a line break")
    if not name.isascii():
        return Header(name, "utf-8").encode(linesep="\r\n")
    if any(char in _SPECIALS for char in name) or name != name.strip():
        return f'"{quote(name)}"'
    return name


def _named_address_header(name: str, address: str, display: str) -> tuple[str, bool]:
    value, utf8 = _address_header(name, address)
    if display:
        value = f"{_display_name(display)} <{value}>"
    return value, utf8


def _encoded_body(text: str) -> tuple[str, str]:
    """The transfer encoding for ``text`` and the text encoded, CRLF lines:
    quoted-printable while it is mostly ASCII (readable in the raw message),
    base64 when quoted-printable would be the larger (most scripts but Latin)."""
    lines = text.replace("\r\n", "\n")
    if not lines.endswith("\n"):
        lines += "\n"
    if _QP_AS_IS.fullmatch(lines) and all(
        len(line) <= 76 and not line.endswith((" ", "\t")) for line in lines.split("\n")
    ):
        # What quoted-printable would leave as it is (most alerts): not encoded
        # character by character.
        return "quoted-printable", lines.replace("\n", "\r\n")
    raw = lines.encode("utf-8")
    # The bytes over 127: those of the characters that are not ASCII.
    non_ascii = len(raw) - len(lines.encode("ascii", "ignore"))
    if non_ascii * 3 > len(raw):
        encoded = base64.encodebytes(raw).decode("ascii")
        return "base64", encoded.replace("\n", "\r\n")
    return "quoted-printable", _quoted_printable(text).replace("\n", "\r\n")


# The longest line of quoted-printable RFC 2045 allows.
QP_LINE_MAX = 76
# Quoted-printable lines end in CRLF: a lone CR breaks the line too.
_LINE_BREAK = re.compile(r"\r\n?")


def _quoted_printable(text: str) -> str:
    """``text`` quoted-printable in UTF-8, LF lines of at most 76 characters,
    each CRLF, CR or LF of ``text`` one line break: by ``binascii`` (in C, a
    quarter of the time), or by the email package when binascii's makes a line
    too long (a blank ending a full line, which it writes as three characters
    past the limit)."""
    text = _LINE_BREAK.sub("\n", text)
    if not text.endswith("\n"):
        text += "\n"
    encoded = binascii.b2a_qp(text.encode("utf-8"), istext=True).decode("ascii")
    if max(map(len, encoded.split("\n"))) <= QP_LINE_MAX:
        return encoded
    return _UTF8_QP.body_encode(text)


def _part(content_type: str, text: str) -> str:
    encoding, encoded = _encoded_body(text)
    return (
        f'Content-Type: {content_type}; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: {encoding}\r\n\r\n{encoded}"
    )


def build_message(
    *,
    sender: str,
    recipient: str,
    subject: str,
    body: str,
    message_id: str,
    extra_headers: dict[str, str] | None = None,
    sender_name: str = "",
    reply_to: str = "",
    html: str = "",
    language: str = "en",
) -> bytes:
    """The message, as the bytes DATA sends, with the headers system mail should
    carry: plain text, or ``multipart/alternative`` (the text first, then
    ``html``) when there is HTML.

    ``sender_name`` is From's display name (RFC 2047 when not ASCII); the
    envelope sender is the session's business, not the message's.
    Written out directly: the delivery engine builds one per email, and the
    email package's generic header folding costs more than the SMTP exchange.
    """
    from_header, from_utf8 = _named_address_header("From", sender, sender_name)
    to_header, to_utf8 = _address_header("To", recipient)
    reply_header, reply_utf8 = ("", False)
    if reply_to:
        reply_header, reply_utf8 = _address_header("Reply-To", reply_to)
    headers = {
        "Subject": subject,
        # RFC 5322 wants a numeric zone; "GMT" is only the obsolete form.
        # (formatdate's layout: format_datetime takes half as long again.)
        "Date": formatdate(usegmt=True).removesuffix("GMT") + "+0000",
        "Message-ID": message_id,
        # RFC 3834: automatic mail, so that auto-responders stay quiet.
        "Auto-Submitted": "auto-generated",
        **(extra_headers or {}),
        "MIME-Version": "1.0",
        "Content-Language": language,
    }
    head = f"From: {from_header}\r\nTo: {to_header}\r\n"
    if reply_header:
        head += f"Reply-To: {reply_header}\r\n"
    head += "".join(
        f"{name}: {_header_value(name, value)}\r\n" for name, value in headers.items()
    )
    if html:
        # QP never writes "=_" and base64 never writes "_": the boundary cannot
        # occur in a part.
        boundary = f"=_{uuid.uuid4().hex}"
        content = (
            f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'
            f"--{boundary}\r\n{_part('text/plain', body)}"
            f"--{boundary}\r\n{_part('text/html', html)}"
            f"--{boundary}--\r\n"
        )
    else:
        content = _part("text/plain", body)
    utf8 = from_utf8 or to_utf8 or reply_utf8
    return (head + content).encode("utf-8" if utf8 else "ascii")
