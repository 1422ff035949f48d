"""The message itself: the bytes DATA sends."""

from __future__ import annotations

from email.charset import QP, Charset
from email.header import Header
from email.utils import formatdate

from core.addresses import AddressError, wire_address

# UTF-8 text, quoted-printable: readable in the raw message, safe over 7-bit.
_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP


def _header_value(name: str, value: str) -> str:
    """A header value for the wire: ASCII as it is, anything else RFC 2047."""
    if "\r" in value or "\n" in value:
        raise ValueError(f"{name} must not contain a line break")
    if value.isascii():
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


def build_message(
    *,
    sender: str,
    recipient: str,
    subject: str,
    body: str,
    message_id: str,
    extra_headers: dict[str, str] | None = None,
) -> bytes:
    """A plain-text message, as the bytes DATA sends, with the headers system mail
    should carry.

    Written out directly: the delivery engine builds one per email, and the
    email package's generic header folding costs more than the SMTP exchange.
    """
    from_header, from_utf8 = _address_header("From", sender)
    to_header, to_utf8 = _address_header("To", recipient)
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
        "Content-Type": 'text/plain; charset="utf-8"',
        "Content-Transfer-Encoding": "quoted-printable",
    }
    head = f"From: {from_header}\r\nTo: {to_header}\r\n" + "".join(
        f"{name}: {_header_value(name, value)}\r\n" for name, value in headers.items()
    )
    text = body.replace("\r\n", "\n")
    if not text.endswith("\n"):
        text += "\n"
    encoded = _UTF8_QP.body_encode(text).replace("\n", "\r\n")
    return (head + "\r\n" + encoded).encode(
        "utf-8" if from_utf8 or to_utf8 else "ascii"
    )
