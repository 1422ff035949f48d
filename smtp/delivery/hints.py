"""What a failure means, in words a person can act on: one place for the rules.

A refused command is read as a person would read it: the step, the reply code,
the enhanced status code (RFC 3463) and the text, with the configuration in
mind. Postfix, for one, reports sender restrictions at RCPT TO
(``smtpd_delay_reject``), so the step alone would blame the recipient.
``REPLY_RULES`` are tried in order and the first that matches explains the
reply; a new kind of reply (a provider's throttling, basic authentication
switched off) is a new row there.

TLS handshakes that fail, and servers that stay silent, are explained here too.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from core.addresses import AddressError, wire_address
from smtp.delivery.server import SmtpServer
from smtp.enums import IMPLICIT_TLS_PORT, Security

# How the hints name the TLS settings: the form's TLS switch and TLS mode (the
# API's use_tls and security).
STARTTLS_MODE = "TLS mode STARTTLS (security: starttls)"
IMPLICIT_TLS_MODE = "TLS mode Implicit TLS / SMTPS (security: ssl)"

_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})(?!\S)")
_ADDRESS = re.compile(r"<([^<>\s]*@[^<>\s]+)>")


@dataclass(frozen=True)
class Explanation:
    detail: str
    hint: str
    field: str


@dataclass(frozen=True)
class Diagnosis:
    """What to tell a person about a refusal, the form field to fix, and whether
    the same attempt could succeed later."""

    hint: str
    field: str
    transient: bool


@dataclass(frozen=True)
class Refusal:
    """A reply that refused a command of the session."""

    step: str  # mail_from, rcpt_to, data, auth, ...
    code: int
    text: str
    server: SmtpServer
    sender: str = ""
    recipient: str = ""

    @property
    def enhanced(self) -> str:
        """The enhanced status code ("5.7.1"), or "" if the reply has none."""
        match = _ENHANCED.match(self.text)
        return ".".join(match.groups()) if match else ""

    @property
    def detail_code(self) -> str:
        """The enhanced code without its class ("7.1"): 4.7.1 and 5.7.1 mean the
        same thing, one temporary, one not."""
        return self.enhanced[2:]

    @property
    def address(self) -> str:
        """The first <address> the reply names, in lower case."""
        match = _ADDRESS.search(self.text)
        return match.group(1).lower() if match else ""

    @property
    def lowered(self) -> str:
        return self.text.lower()

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    def names(self, address: str) -> bool:
        """Whether the reply's <address> is ``address`` (in either domain form)."""
        if not address or not self.address:
            return False
        try:
            forms = {address, wire_address(address).envelope}
        except AddressError:
            forms = {address}
        return self.address in {form.lower() for form in forms}


def _deferred(hint: str) -> str:
    return hint + " The refusal is temporary (4xx); it is retried."


def _starttls_required(refusal: Refusal) -> bool:
    text = refusal.lowered
    return (refusal.code == 530 and "starttls" in text) or (
        refusal.detail_code == "7.11" and "encryption required" in text
    )


def _explain_starttls_required(refusal: Refusal) -> Diagnosis:
    if refusal.server.security == Security.NONE:
        hint = (
            "The server takes mail and logins only over TLS, and TLS is off: turn "
            f"TLS on with {STARTTLS_MODE}, usually on port 587."
        )
        field = "use_tls"
    else:
        hint = f"The server asks for STARTTLS first: choose {STARTTLS_MODE}."
        field = "security"
    return Diagnosis(
        hint=_deferred(hint) if refusal.temporary else hint,
        field=field,
        transient=refusal.temporary,
    )


def _login_required(refusal: Refusal) -> bool:
    text = refusal.lowered
    return refusal.step in ("mail_from", "rcpt_to") and (
        "authentication required" in text
        or "not authenticated" in text
        # Microsoft 365: client was not authenticated to send anonymous mail.
        or refusal.detail_code == "7.57"
    )


def _explain_login_required(refusal: Refusal) -> Diagnosis:
    return Diagnosis(
        hint=(
            "The server says this session is not logged in, though the login "
            "succeeded: check that the account may send mail over SMTP."
            if refusal.server.authenticates
            else "The server takes mail only from clients that log in: enter "
            "Username and Password."
        ),
        field="username",
        transient=refusal.temporary,
    )


def _sender_refused(refusal: Refusal) -> bool:
    text = refusal.lowered
    signs = (
        "sender address rejected" in text
        # RFC 3463: bad sender's mailbox address syntax; bad sender's system
        # address.
        or refusal.detail_code in ("1.7", "1.8")
        # Microsoft 365: the account may not send as this sender (at RCPT TO or
        # after DATA).
        or refusal.detail_code == "7.60"
        or "sendasdenied" in text
        # Ownership or verification of the sender: Postfix's "not owned by
        # user", Amazon SES's "Email address is not verified" (after DATA).
        or "not owned" in text
        or "not verified" in text
        or "unverified" in text
    )
    if refusal.step == "mail_from":
        return signs or not refusal.temporary
    if refusal.step == "rcpt_to":
        # The reply may name the sender rather than say so.
        return signs or (
            refusal.names(refusal.sender) and not refusal.names(refusal.recipient)
        )
    return refusal.step == "data" and signs


def _refused_bounce_address(refusal: Refusal) -> bool:
    """Whether the refused envelope sender is the bounce address (MAIL FROM), not
    the From address."""
    bounce = refusal.server.bounce_address
    return (
        refusal.step == "mail_from"
        and bool(bounce)
        and refusal.sender.lower() == bounce.lower()
        and bounce.lower() != refusal.server.sender_email.lower()
    )


def _explain_bounce_address(refusal: Refusal) -> Diagnosis:
    server = refusal.server
    hint = (
        f"The server refused the envelope sender (MAIL FROM) {refusal.sender}, the "
        "Bounce address: set Bounce address to an address this account may send "
        "as, or clear it to use the Sender."
    )
    if server.authenticates:
        hint += (
            " Many providers require the sender to be the login "
            f"({server.username}) or one of its verified aliases."
        )
    return Diagnosis(
        hint=_deferred(hint) if refusal.temporary else hint,
        field="bounce_address",
        transient=refusal.temporary,
    )


def _explain_sender(refusal: Refusal) -> Diagnosis:
    server = refusal.server
    if _refused_bounce_address(refusal):
        return _explain_bounce_address(refusal)
    sender = refusal.sender or server.sender_email
    hint = f"The server refused the sender {sender}"
    if refusal.step != "mail_from":
        hint += (
            f" (it answered at {refusal.step.replace('_', ' ').upper()}: servers "
            "such as Postfix report sender restrictions there; the recipient is not "
            "the problem)"
        )
    if "not logged in" in refusal.lowered and not server.authenticates:
        hint += (
            ": it accepts this sender only from a logged-in client. Enter Username "
            "and Password, or set Sender to an address the server accepts without "
            "login."
        )
    else:
        hint += ": set Sender to an address this account may send as."
        if server.authenticates:
            hint += (
                " Many providers require the sender to be the login "
                f"({server.username}) or one of its verified aliases."
            )
    return Diagnosis(
        hint=_deferred(hint) if refusal.temporary else hint,
        field="sender_email",
        transient=refusal.temporary,
    )


def _relay_denied(refusal: Refusal) -> bool:
    text = refusal.lowered
    return refusal.step == "rcpt_to" and (
        ("relay" in text and ("denied" in text or "not permitted" in text))
        or "unable to relay" in text
        # Microsoft 365: unable to relay to a domain it does not accept.
        or refusal.detail_code == "7.54"
    )


def _explain_relay_denied(refusal: Refusal) -> Diagnosis:
    authenticates = refusal.server.authenticates
    return Diagnosis(
        hint=(
            "The server does not relay mail for this account to that domain: ask "
            "its administrator, or use a server that relays for you."
            if authenticates
            else "The server relays only for clients that log in: enter Username "
            "and Password, or use a server that relays for this console."
        ),
        field="" if authenticates else "username",
        transient=refusal.temporary,
    )


def _helo_rejected(refusal: Refusal) -> bool:
    # Postfix reports HELO restrictions at RCPT TO too (smtpd_delay_reject).
    return "helo command rejected" in refusal.lowered


def _explain_helo_rejected(refusal: Refusal) -> Diagnosis:
    return Diagnosis(
        hint="The server refused the name this console gives in EHLO: the operator "
        "sets SMTP_EHLO_NAME to the console's public, fully qualified host name "
        "(by default it is PUBLIC_URL's host).",
        field="",
        transient=refusal.temporary,
    )


def _client_rejected(refusal: Refusal) -> bool:
    # Postfix reports client restrictions at RCPT TO too (smtpd_delay_reject).
    return "client host rejected" in refusal.lowered


def _explain_client_rejected(refusal: Refusal) -> Diagnosis:
    return Diagnosis(
        hint="The server refuses mail from this console's network address: ask its "
        "administrator to allow it, or use another server.",
        field="",
        transient=refusal.temporary,
    )


def _app_password_required(refusal: Refusal) -> bool:
    return refusal.step == "auth" and refusal.detail_code == "7.9"


def _explain_app_password(refusal: Refusal) -> Diagnosis:
    return Diagnosis(
        hint="The server wants an app password, not the account's own password: "
        "create one in the account's security settings and enter it as Password.",
        field="password",
        transient=refusal.temporary,
    )


def _explain_by_step(refusal: Refusal) -> Diagnosis:
    """What the step alone says, when no rule above knew the reply."""
    if refusal.temporary:
        hints = {
            "auth": "Temporary authentication failure at the server; it is retried.",
        }
        return Diagnosis(
            hint=hints.get(
                refusal.step, "The server deferred the message (4xx); it is retried."
            ),
            field="",
            transient=True,
        )
    recipient = refusal.recipient
    hint, field = {
        "rcpt_to": (
            f"The server refused the recipient {recipient}: check the address.",
            "recipient",
        ),
        "data": (
            "The server rejected the message itself (content, size or policy): "
            "see its reply.",
            "",
        ),
        "auth": (
            "The server refused the username or password: check both. Providers "
            "such as Gmail or Microsoft 365 need an app password, or SMTP AUTH "
            "enabled for the mailbox.",
            "password",
        ),
        "rset": ("The server refused RSET.", ""),
    }.get(refusal.step, ("See the server's reply.", ""))
    return Diagnosis(hint=hint, field=field, transient=False)


Rule = tuple[Callable[[Refusal], bool], Callable[[Refusal], Diagnosis]]

REPLY_RULES: list[Rule] = [
    (_starttls_required, _explain_starttls_required),
    (_login_required, _explain_login_required),
    (_helo_rejected, _explain_helo_rejected),
    (_client_rejected, _explain_client_rejected),
    (_sender_refused, _explain_sender),
    (_relay_denied, _explain_relay_denied),
    (_app_password_required, _explain_app_password),
]


def diagnose(refusal: Refusal) -> Diagnosis:
    """The hint, field and transience for a refused command."""
    for matches, explain in REPLY_RULES:
        if matches(refusal):
            return explain(refusal)
    return _explain_by_step(refusal)


# -- no greeting ---------------------------------------------------------------------


def explain_silence(server: SmtpServer, *, what: str) -> tuple[str, Diagnosis]:
    """A server that accepted the connection but never greeted (``what``
    happened instead), in STARTTLS or plain mode: the detail and the diagnosis."""
    port = server.port
    tls_on = server.security != Security.NONE
    detail = f"Connected, but {what}."
    if port == IMPLICIT_TLS_PORT:
        # Port 465 is implicit TLS (RFC 8314): the server waits for the client's
        # TLS handshake and says nothing until then. Waiting again will not help.
        return detail, Diagnosis(
            hint=(
                f"Port {port} is the implicit-TLS port: the server waits for TLS "
                "before it greets. "
                + (
                    f"Choose {IMPLICIT_TLS_MODE}, or use port 587 with STARTTLS."
                    if tls_on
                    else f"Turn TLS on ({IMPLICIT_TLS_MODE} on this port)."
                )
            ),
            field="security" if tls_on else "use_tls",
            transient=False,
        )
    return detail, Diagnosis(
        hint=(
            "The server accepted the connection but never greeted: it may expect "
            f"implicit TLS on this port (then choose {IMPLICIT_TLS_MODE}"
            + ("" if tls_on else ", with TLS on")
            + "), or be overloaded."
        ),
        field="security" if tls_on else "port",
        transient=True,
    )


# -- TLS -------------------------------------------------------------------------------

# OpenSSL verify codes.
_SELF_SIGNED_LEAF = 18
_SELF_SIGNED_IN_CHAIN = 19
_UNTRUSTED_ISSUER = (2, 20, 21)
_EXPIRED = 10
_HOSTNAME_MISMATCH = 62


def explain_tls_error(error: Exception, *, server: SmtpServer) -> Explanation | None:
    """A certificate or handshake failure explained; ``None`` for plain I/O errors."""
    host, port = server.host, server.port
    if isinstance(error, ssl.SSLCertVerificationError):
        message = error.verify_message or str(error)
        code = error.verify_code
        if code == _SELF_SIGNED_LEAF:
            hint = (
                "The server's certificate is self-signed: install a certificate "
                "from a trusted CA on the server, or tick Insecure to skip "
                "verification (the connection is then open to impersonation)."
            )
        elif code == _EXPIRED:
            hint = "The server's certificate has expired: renew it on the server."
        elif code == _HOSTNAME_MISMATCH or "hostname" in message.lower():
            hint = (
                f"The certificate is not valid for {host}: enter the host name "
                "the certificate was issued for, or fix the certificate."
            )
        elif code == _SELF_SIGNED_IN_CHAIN or code in _UNTRUSTED_ISSUER:
            hint = (
                "The certificate is signed by a CA this console does not trust. "
                "If the server uses a private (company) CA, the operator adds that "
                "CA's certificate to the CA bundle (SMTP_CA_BUNDLE); otherwise "
                "install the full certificate chain on the server. Ticking "
                "Insecure skips verification (the connection is then open to "
                "impersonation)."
            )
        else:
            hint = "Fix the server's certificate, or tick Insecure to skip checks."
        trust = (_SELF_SIGNED_LEAF, _SELF_SIGNED_IN_CHAIN, *_UNTRUSTED_ISSUER)
        return Explanation(
            detail=f"Certificate verification failed: {message}.",
            hint=hint,
            field="use_insecure" if code in trust else "host",
        )
    if isinstance(error, ssl.SSLError):
        reason = (error.reason or str(error)).lower().replace("_", " ")
        if "wrong version number" in reason or "record layer failure" in reason:
            # The server answered the TLS handshake in plain text: it greets
            # first, as on 587 (STARTTLS) or 25.
            return Explanation(
                detail=f"TLS handshake failed: {reason}.",
                hint=(
                    f"The server on port {port} speaks plain SMTP first, so "
                    f"implicit TLS cannot start: choose {STARTTLS_MODE}"
                    + (
                        " (the usual mode on port 587)."
                        if port != IMPLICIT_TLS_PORT
                        else "."
                    )
                    + " Implicit TLS is for the server's SMTPS port, usually 465."
                ),
                field="security",
            )
        return Explanation(
            detail=f"TLS handshake failed: {reason}.",
            hint="The server and this console share no TLS version or cipher "
            "(at least TLS 1.2 is required).",
            field="use_tls",
        )
    return None
