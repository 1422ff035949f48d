"""smtplib's client, bounded against hostile servers.

- **A deadline for the whole session**: every socket operation waits at most
  ``min(operation timeout, time left)``, so a server that drips one byte at a
  time cannot hold a worker past the deadline (a per-operation timeout alone
  never fires while bytes keep coming).
- **Replies are capped** in lines and bytes: smtplib caps neither, and a server
  that sends endless continuation lines would grow the worker without bound.
- **Credentials are UTF-8** (RFC 4616 PLAIN and LOGIN carry UTF-8); smtplib
  encodes them as ASCII and fails inside AUTH on any other character.
- **One AUTH mechanism per attempt**: a wrong password counts once against the
  server's lockout, not once per mechanism.
- STARTTLS discards nothing silently: plain text the server sent after its 220
  (a command-injection attempt) ends the session.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import re
import smtplib
import socket
from collections.abc import Callable
from email.base64mime import body_encode as encode_base64

REPLY_MAX_LINES = 100
REPLY_MAX_BYTES = 64 * 1024
# smtplib's own limit for one line.
LINE_MAX_BYTES = 8192
# Challenges answered in one AUTH exchange before giving up (smtplib allows 5).
MAX_CHALLENGES = 5
PREFERRED_MECHANISMS = ("CRAM-MD5", "PLAIN", "LOGIN")


# A dot-atom address at a host name: what ``smtplib.quoteaddr`` returns as
# ``<address>`` after running the email package's address parser over it (about
# 4% of a worker's CPU per email). Anything else still goes through it.
_PLAIN_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\Z"
)


# Linux: acknowledge at once what arrives while pipelined replies are awaited. A
# server that writes each reply on its own with Nagle's algorithm on holds the
# next one back until the last was acknowledged, and a delayed acknowledgement
# (up to 40 ms) would cost more than pipelining saves.
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)

# smtplib's dot-stuffing of DATA (RFC 5321 4.5.2).
_LINE_STARTING_WITH_A_DOT = re.compile(rb"(?m)^\.")


def envelope_quoted(address: str) -> str:
    """``address`` as MAIL FROM and RCPT TO carry it: ``smtplib.quoteaddr``'s
    answer, without the parser for a plain address."""
    if _PLAIN_ADDRESS.match(address):
        return f"<{address}>"
    return smtplib.quoteaddr(address)


class DeadlineExceeded(TimeoutError):
    """The session's deadline passed."""


class ReplyTooLong(smtplib.SMTPServerDisconnected):
    """A reply over the caps; the connection is closed."""


class BoundedSMTP(smtplib.SMTP):
    """An ``smtplib.SMTP`` whose socket the caller connects (``client.sock = ...``).

    ``budget()`` gives the seconds the next socket operation may take, and raises
    ``DeadlineExceeded`` once the session's deadline has passed.
    """

    def __init__(self, *, local_hostname: str, budget: Callable[[], float]):
        super().__init__(local_hostname=local_hostname, timeout=budget())
        self.budget = budget
        self._received = bytearray()
        # Replies to pipelined commands not read yet.
        self._pipelined_replies = 0

    def _timed_out(self, error: OSError) -> OSError:
        self.close()
        try:
            self.budget()
        except DeadlineExceeded as passed:
            return passed
        return smtplib.SMTPServerDisconnected(
            f"Connection unexpectedly closed: {error or 'timed out'}"
        )

    # -- writing and reading ------------------------------------------------------

    def send(self, s: bytes | str) -> None:
        if self.sock is None:
            raise smtplib.SMTPServerDisconnected("please run connect() first")
        if isinstance(s, str):
            s = s.encode(self.command_encoding)
        self.sock.settimeout(self.budget())
        try:
            self.sock.sendall(s)
        except TimeoutError as error:
            raise self._timed_out(error) from None
        except OSError:
            self.close()
            raise smtplib.SMTPServerDisconnected("Server not connected") from None

    def _readline(self) -> bytes:
        while True:
            end = self._received.find(b"\n")
            if end >= 0:
                line = bytes(self._received[: end + 1])
                del self._received[: end + 1]
                return line
            if len(self._received) > LINE_MAX_BYTES:
                self.close()
                raise ReplyTooLong("reply too long: a line over 8 KiB")
            if self.sock is None:
                raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
            self.sock.settimeout(self.budget())
            if self._pipelined_replies and _QUICKACK is not None:
                with contextlib.suppress(OSError):
                    self.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            try:
                chunk = self.sock.recv(4096)
            except TimeoutError as error:
                raise self._timed_out(error) from None
            except OSError as error:
                self.close()
                raise smtplib.SMTPServerDisconnected(
                    f"Connection unexpectedly closed: {error}"
                ) from None
            if not chunk:
                self.close()
                raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
            self._received += chunk

    def getreply(self) -> tuple[int, bytes]:
        lines: list[bytes] = []
        size = 0
        while True:
            line = self._readline()
            size += len(line)
            if len(lines) >= REPLY_MAX_LINES or size > REPLY_MAX_BYTES:
                self.close()
                raise ReplyTooLong(
                    f"reply too long: more than {REPLY_MAX_LINES} lines or "
                    f"{REPLY_MAX_BYTES // 1024} KiB"
                )
            lines.append(line[4:].strip(b" \t\r\n"))
            try:
                code = int(line[:3])
            except ValueError:
                code = -1
                break
            if line[3:4] != b"-":
                break
        if self._pipelined_replies:
            self._pipelined_replies -= 1
        return code, b"\n".join(lines)

    def close(self) -> None:
        self._received.clear()
        self._pipelined_replies = 0
        super().close()

    # -- the envelope ---------------------------------------------------------------

    def _mail_arguments(self, sender: str, options) -> str:
        """MAIL FROM's arguments, as smtplib's ``mail`` writes them (SMTPUTF8
        switches the session's commands to UTF-8)."""
        extra = ""
        if options and self.does_esmtp:
            if any(option.lower() == "smtputf8" for option in options):
                if not self.has_extn("smtputf8"):
                    raise smtplib.SMTPNotSupportedError(
                        "SMTPUTF8 not supported by server"
                    )
                self.command_encoding = "utf-8"
            extra = " " + " ".join(options)
        return f"from:{envelope_quoted(sender)}{extra}"

    def mail(self, sender: str, options=()) -> tuple[int, bytes]:
        """smtplib's ``mail``, the address quoted by ``envelope_quoted``."""
        self.putcmd("mail", self._mail_arguments(sender, options))
        return self.getreply()

    def rcpt(self, recip: str, options=()) -> tuple[int, bytes]:
        """smtplib's ``rcpt``, the address quoted by ``envelope_quoted``."""
        extra = " " + " ".join(options) if options and self.does_esmtp else ""
        self.putcmd("rcpt", f"to:{envelope_quoted(recip)}{extra}")
        return self.getreply()

    def send_envelope(self, sender: str, options, recipients: list[str]) -> None:
        """MAIL FROM, every RCPT TO and DATA in one write, for a server that
        offers PIPELINING (RFC 2920); their replies are read in that order with
        ``getreply`` (DATA's by ``data_sent``). Nothing is written if a line
        would hold a line break (as smtplib's ``putcmd``)."""
        lines = [
            f"mail {self._mail_arguments(sender, options)}",
            *(f"rcpt to:{envelope_quoted(recipient)}" for recipient in recipients),
            "data",
        ]
        if any("\r" in line or "\n" in line for line in lines):
            raise ValueError(
                "command and arguments contain prohibited newline characters"
            )
        self.send("".join(f"{line}\r\n" for line in lines))
        self._pipelined_replies = len(lines)

    def data_sent(self, message: bytes) -> tuple[int, bytes]:
        """smtplib's ``data`` once its DATA command went with the envelope: DATA's
        reply, then the message (dot-stuffed, ended by a lone dot) and the
        server's reply to it."""
        code, reply = self.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
        body = _LINE_STARTING_WITH_A_DOT.sub(b"..", message)
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        self.send(body + b".\r\n")
        return self.getreply()

    # -- TLS ------------------------------------------------------------------------

    def starttls(self, *, context) -> tuple[int, bytes]:
        self.ehlo_or_helo_if_needed()
        if not self.has_extn("starttls"):
            raise smtplib.SMTPNotSupportedError("STARTTLS not offered by the server.")
        code, reply = self.docmd("STARTTLS")
        if code != 220:
            raise smtplib.SMTPResponseException(code, reply)
        if self._received:
            # Anything after the 220 came in plain text and would be read as if
            # it were protected by TLS.
            self.close()
            raise smtplib.SMTPServerDisconnected(
                "The server sent data after agreeing to STARTTLS."
            )
        self.sock.settimeout(self.budget())
        try:
            self.sock = context.wrap_socket(self.sock, server_hostname=self._host)
        except TimeoutError as error:
            raise self._timed_out(error) from None
        # RFC 3207: forget everything learnt before TLS.
        self.helo_resp = self.ehlo_resp = None
        self.esmtp_features = {}
        self.does_esmtp = False
        return code, reply

    # -- AUTH -----------------------------------------------------------------------

    def auth(self, mechanism, authobject, *, initial_response_ok=True):
        mechanism = mechanism.upper()
        initial = authobject() if initial_response_ok else None
        if initial is not None:
            encoded = encode_base64(initial.encode("utf-8"), eol="")
            code, reply = self.docmd("AUTH", f"{mechanism} {encoded}")
            self._auth_challenge_count = 1
        else:
            code, reply = self.docmd("AUTH", mechanism)
            self._auth_challenge_count = 0
        while code == 334:
            self._auth_challenge_count += 1
            if self._auth_challenge_count > MAX_CHALLENGES:
                raise smtplib.SMTPAuthenticationError(
                    code, b"Too many AUTH challenges."
                )
            try:
                challenge = base64.b64decode(reply, validate=True)
            except ValueError:
                challenge = b""
            answer = authobject(challenge)
            code, reply = self.docmd(encode_base64(answer.encode("utf-8"), eol=""))
        if code in (235, 503):
            return code, reply
        raise smtplib.SMTPAuthenticationError(code, reply)

    def auth_cram_md5(self, challenge=None):
        if challenge is None:
            return None
        digest = hmac.HMAC(self.password.encode("utf-8"), challenge, "md5")
        return f"{self.user} {digest.hexdigest()}"

    def auth_xoauth2(self, encoded: str) -> tuple[int, bytes]:
        """AUTH XOAUTH2 with ``encoded`` (see ``oauth2.xoauth2_string``).

        A refused token gets a 334 error challenge (base64 JSON, RFC 7628): the
        client answers with an empty line and the server sends the final reply
        (535), which is raised with the challenge's status appended.
        """
        self.ehlo_or_helo_if_needed()
        code, reply = self.docmd("AUTH", f"XOAUTH2 {encoded}")
        if code == 334:
            try:
                challenge = json.loads(base64.b64decode(reply, validate=True))
            except ValueError:
                challenge = {}
            code, reply = self.docmd("")
            status = challenge.get("status") if isinstance(challenge, dict) else None
            if code == 334:
                # Still asking: the exchange is cancelled (RFC 4954 "*").
                code, reply = self.docmd("*")
            if status and code != 235:
                reply = reply + f" (XOAUTH2 status {status})".encode()
        if code in (235, 503):
            return code, reply
        raise smtplib.SMTPAuthenticationError(code, reply)

    def login(self, user, password, *, initial_response_ok=True):
        """AUTH with the first mechanism both sides know; another one only if the
        server says it does not know that mechanism after all (504)."""
        self.ehlo_or_helo_if_needed()
        if not self.has_extn("auth"):
            raise smtplib.SMTPNotSupportedError("AUTH not offered by the server.")
        offered = self.esmtp_features["auth"].upper().split()
        mechanisms = [name for name in PREFERRED_MECHANISMS if name in offered]
        if not mechanisms:
            raise smtplib.SMTPException("No suitable authentication method found.")
        self.user, self.password = user, password
        try:
            for mechanism in mechanisms:
                method = getattr(self, "auth_" + mechanism.lower().replace("-", "_"))
                try:
                    return self.auth(
                        mechanism, method, initial_response_ok=initial_response_ok
                    )
                except smtplib.SMTPAuthenticationError as error:
                    if error.smtp_code != 504 or mechanism == mechanisms[-1]:
                        raise
        finally:
            self.password = ""
        raise AssertionError("unreachable")  # pragma: no cover
