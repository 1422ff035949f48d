"""The message itself: the bytes DATA sends."""

from __future__ import annotations

from email.charset import QP, Charset
from email.header import Header
from email.utils import formatdate

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
    headers = {
        "From": sender,
        "To": recipient,
        "Subject": subject,
        "Date": formatdate(localtime=False, usegmt=True),
        "Message-ID": message_id,
        # RFC 3834: automatic mail, so that auto-responders stay quiet.
        "Auto-Submitted": "auto-generated",
        **(extra_headers or {}),
        "MIME-Version": "1.0",
        "Content-Type": 'text/plain; charset="utf-8"',
        "Content-Transfer-Encoding": "quoted-printable",
    }
    head = "".join(
        f"{name}: {_header_value(name, value)}\r\n" for name, value in headers.items()
    )
    text = body.replace("\r\n", "\n")
    if not text.endswith("\n"):
        text += "\n"
    encoded = _UTF8_QP.body_encode(text).replace("\n", "\r\n")
    return (head + "\r\n" + encoded).encode("ascii")
