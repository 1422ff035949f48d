"""The SMTP session: the only code that speaks SMTP.

``SmtpConnection`` opens a session with the security mode of the server (plain,
STARTTLS required, or implicit TLS), verifies certificates unless ``use_insecure``,
authenticates when credentials are set, and sends or verifies messages. Every
socket operation has a timeout. Each step is reported (status, duration, the
server's reply, a hint a person can act on, and the form field to fix); a failure
says whether it is transient (worth retrying) or permanent.

Addresses are resolved once and checked by the network policy; the connection
goes only to those checked addresses, in turn, while SNI and certificate checks
use the host name. Credentials never appear in a step.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable

from core.addresses import AddressError, WireAddress, wire_address
from smtp.delivery.hints import Refusal, diagnose
from smtp.delivery.opening import (
    POLICY_MESSAGE,
    Resolver,
    SessionOpener,
    ehlo_name,
    system_resolver,
)
from smtp.delivery.server import SmtpServer
from smtp.delivery.steps import (
    Outcome,
    Step,
    StepFailed,
    reply_text,
)

__all__ = [
    "POLICY_MESSAGE",
    "SmtpConnection",
    "deliver",
    "ehlo_name",
    "system_resolver",
]


def _shown(address: str, wire: WireAddress) -> str:
    """An address as given, and as sent when that differs (an IDNA domain)."""
    if wire.envelope == address:
        return address
    return f"{address} (as {wire.envelope})"


class SmtpConnection(SessionOpener):
    """An SMTP session to ``server``; reusable for many messages."""

    def _command(
        self,
        name: str,
        call: Callable[[], tuple[int, bytes]],
        *,
        ok: tuple[int, ...],
        detail: str,
        sender: str = "",
        recipient: str = "",
    ) -> tuple[int, str]:
        step, started = self._begin(name)
        try:
            code, message = call()
        except smtplib.SMTPResponseException as error:
            code, message = error.smtp_code, error.smtp_error
        except (OSError, smtplib.SMTPServerDisconnected) as error:
            raise self._io_failure(step, started, error) from None
        reply = reply_text(message)
        if code not in ok:
            diagnosis = diagnose(
                Refusal(
                    step=name,
                    code=code,
                    text=reply,
                    server=self.server,
                    sender=sender,
                    recipient=recipient,
                )
            )
            raise self._fail(
                step,
                started,
                transient=diagnosis.transient,
                reply_code=code,
                reply=reply,
                detail=f"The server refused {name.replace('_', ' ').upper()} ({code}).",
                hint=diagnosis.hint,
                field=diagnosis.field,
                hint_code=diagnosis.code,
            )
        self._finish(step, started, reply_code=code, reply=reply, detail=detail)
        return code, step.reply  # redacted, like everything a step records

    def _unsendable(
        self, step_name: str, address: str, *, why: str, hint: str
    ) -> StepFailed:
        """An address this session cannot carry: that email fails, nothing of it
        is sent, and the session stays usable for the next one."""
        step, started = self._begin(step_name)
        is_sender = step_name == "mail_from"
        return self._fail(
            step,
            started,
            transient=False,
            detail=f"Not sent: the {'sender' if is_sender else 'recipient'} "
            f"{address} {why}",
            hint=hint,
            field="sender_email" if is_sender else "recipient",
        )

    def _wire(self, step_name: str, address: str) -> WireAddress:
        """``address`` as SMTP carries it, checked before anything is sent."""
        is_sender = step_name == "mail_from"
        try:
            wire = wire_address(address)
        except AddressError as problem:
            raise self._unsendable(
                step_name,
                address,
                why=f"cannot be written in SMTP: {problem}",
                hint="Set Sender to a valid address."
                if is_sender
                else "Correct the recipient's address.",
            ) from None
        if wire.utf8 and not self.client.has_extn("smtputf8"):
            raise self._unsendable(
                step_name,
                address,
                why="has a non-ASCII part before @, and the server does not offer "
                "SMTPUTF8.",
                hint="This server cannot send from non-ASCII addresses; set Sender "
                "to an ASCII address, or use a server that offers SMTPUTF8."
                if is_sender
                else "This server cannot deliver to non-ASCII addresses; use an "
                "ASCII address for this recipient, or a server that offers SMTPUTF8.",
            )
        return wire

    def _envelope(
        self, sender: str, recipients: list[str], *, pipelined: bool = False
    ) -> None:
        """MAIL FROM and RCPT TO, each step with its reply. ``pipelined``: they
        go in one write with DATA (RFC 2920), and their replies are read in
        turn; after a refusal, the replies still on their way are read too."""
        wire_sender = self._wire("mail_from", sender)
        wire_recipients = [self._wire("rcpt_to", r) for r in recipients]
        options: list[str] = []
        if wire_sender.utf8 or any(wire.utf8 for wire in wire_recipients):
            # RFC 6531: the addresses and the headers are UTF-8.
            options.append("SMTPUTF8")
            if self.client.has_extn("8bitmime"):
                options.append("BODY=8BITMIME")

        def mail_from() -> tuple[int, bytes]:
            if not pipelined:
                return self.client.mail(wire_sender.envelope, options)
            # Written within the step: a session the server closed meanwhile
            # fails at MAIL FROM, as without pipelining.
            self.client.send_envelope(
                wire_sender.envelope, options, [w.envelope for w in wire_recipients]
            )
            return self.client.getreply()

        # Replies on their way behind the one being read: each RCPT TO's, DATA's.
        unread = len(recipients) + 1 if pipelined else 0
        try:
            self._command(
                "mail_from",
                mail_from,
                ok=(250,),
                detail=f"Sender {_shown(sender, wire_sender)} accepted.",
                sender=sender,
            )
            for recipient, wire in zip(recipients, wire_recipients, strict=True):
                unread = max(unread - 1, 0)
                self._command(
                    "rcpt_to",
                    self.client.getreply
                    if pipelined
                    else lambda wire=wire: self.client.rcpt(wire.envelope),
                    ok=(250, 251),
                    detail=f"Recipient {_shown(recipient, wire)} accepted.",
                    sender=sender,
                    recipient=recipient,
                )
        except StepFailed:
            if unread:
                self._abandon(unread)
            raise

    def _abandon(self, unread: int) -> None:
        """End a pipelined transaction after a refusal: read the replies still on
        their way, DATA's last. A server that took DATA anyway (354) waits for a
        message that must not come (with another recipient accepted it would go
        out empty): the session is closed, which drops the transaction, and is
        not used again. So is a session whose replies cannot be read."""
        if self.client is None:
            return
        code = 0
        try:
            for _ in range(unread):
                code, _reply = self.client.getreply()
        except (OSError, smtplib.SMTPException):
            code = 354
        if code == 354:
            self.client.close()

    def send(self, message: bytes, *, sender: str, recipients: list[str]) -> str:
        """MAIL FROM, RCPT TO, DATA (``message`` from ``build_message``); returns
        the server's reply to DATA. To a server that offers PIPELINING the
        envelope and DATA go in one write: two round trips a message, not four."""
        with self.failing_as_steps():
            pipelined = self.client.has_extn("pipelining")
            self._envelope(sender, recipients, pipelined=pipelined)
            _code, reply = self._command(
                "data",
                (lambda: self.client.data_sent(message))
                if pipelined
                else (lambda: self.client.data(message)),
                ok=(250,),
                detail=f"Message accepted ({len(message)} bytes).",
                sender=sender,
            )
        return reply

    def verify(self, *, sender: str, recipient: str) -> None:
        """MAIL FROM and RCPT TO, then RSET: proves everything but sends nothing."""
        with self.failing_as_steps():
            self._envelope(sender, [recipient])
            self._command(
                "rset",
                self.client.rset,
                ok=(250,),
                detail="Transaction reset: nothing was sent.",
            )

    def reset(self) -> bool:
        """RSET after a refused transaction; whether the session is still usable."""
        if self.client is None or self.client.sock is None:
            return False
        try:
            return self.client.rset()[0] == 250
        except (OSError, smtplib.SMTPException):
            return False

    def alive(self) -> bool:
        """Whether an open session still answers (NOOP), for reuse."""
        if self.client is None or self.client.sock is None:
            return False
        try:
            return self.client.noop()[0] == 250
        except (OSError, smtplib.SMTPException):
            return False

    def close(self) -> None:
        if self.client is None:
            return
        try:
            if self.client.sock is not None:
                self.client.quit()
        except (OSError, smtplib.SMTPException):
            pass
        finally:
            self.client.close()
            self.client = None


def deliver(
    server: SmtpServer,
    message: bytes | None,
    *,
    sender: str,
    recipients: list[str],
    verify_only: bool = False,
    on_step: Callable[[Step], None] | None = None,
    resolver: Resolver = system_resolver,
    timeout: float | None = None,
) -> Outcome:
    """Open a session, send ``message`` (or verify the envelope), close."""
    connection = SmtpConnection(
        server, on_step=on_step, resolver=resolver, timeout=timeout
    )
    reply = ""
    try:
        connection.open()
        if verify_only:
            connection.verify(sender=sender, recipient=recipients[0])
        else:
            reply = connection.send(message, sender=sender, recipients=recipients)
    except StepFailed as failure:
        return Outcome(
            ok=False,
            steps=connection.steps,
            transient=failure.transient,
            blocked=failure.blocked,
        )
    finally:
        connection.close()
    return Outcome(ok=True, steps=connection.steps, reply=reply)
