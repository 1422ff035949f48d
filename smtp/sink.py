"""A development SMTP sink: an aiosmtpd server that prints or keeps what it receives.

``make run`` starts one on 127.0.0.1:1025 (``manage.py smtp_sink``) so that every
email of the demo can be read in the terminal. Tests and benchmarks use the same
handler to count messages.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage


@dataclass
class ReceivedMessage:
    """One message as the sink received it."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)

    @property
    def message_id(self) -> str:
        return str(self.message.get("Message-ID", ""))


@dataclass
class SinkHandler:
    """aiosmtpd handler: accepts and keeps every message, and calls ``on_message``."""

    on_message: Callable[[ReceivedMessage], None] | None = None
    messages: list[ReceivedMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope) -> str:
        received = ReceivedMessage(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            data=bytes(envelope.original_content or envelope.content),
        )
        with self.lock:
            self.messages.append(received)
        if self.on_message is not None:
            self.on_message(received)
        return "250 2.0.0 Message accepted for delivery"


def describe(received: ReceivedMessage) -> str:
    """A readable rendering of a message for the terminal."""
    message = received.message
    body = message.get_body(preferencelist=("plain", "html"))
    text = body.get_content() if body is not None else ""
    lines = [
        "=" * 72,
        f"From (envelope): {received.mail_from}",
        f"To (envelope):   {', '.join(received.rcpt_tos)}",
        f"Subject:         {message.get('Subject', '')}",
        f"Message-ID:      {message.get('Message-ID', '')}",
        "-" * 72,
        text.rstrip(),
        "=" * 72,
    ]
    return "\n".join(lines)
