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
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from core.addresses import AddressError, wire_address
from smtp.delivery.providers import basic_auth_retirement, uses_password
from smtp.delivery.server import SmtpServer
from smtp.enums import IMPLICIT_TLS_PORT, Security

# How the hints name the TLS settings: the form's Security choice (the API's
# use_tls and security).
STARTTLS_MODE = "Security: STARTTLS (security: starttls)"
IMPLICIT_TLS_MODE = "Security: Implicit TLS / SMTPS (security: ssl)"

_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})(?!\S)")
_ADDRESS = re.compile(r"<([^<>\s]*@[^<>\s]+)>")


# Hint codes: a stable name for a kind of failure, for pages, the API and the
# health check (the hint text may change; the code does not).
BASIC_AUTH_DISABLED = "basic_auth_disabled"
CLIENT_CERTIFICATE_REQUIRED = "client_certificate_required"
CLIENT_CERTIFICATE_REFUSED = "client_certificate_refused"
# Not a failure of the SMTP client's: emails of a configuration that could not
# open a session went through the next level's (failover).
FAILED_OVER = "failed_over"
THROTTLED = "throttled"

BASIC_AUTH_DISABLED_HINT = (
    "This provider no longer accepts passwords: switch Authentication to OAuth2."
)


@dataclass(frozen=True)
class Explanation:
    detail: str
    hint: str
    field: str
    code: str = ""
    # Whether the same attempt could succeed later.
    transient: bool = False


@dataclass(frozen=True)
class Diagnosis:
    """What to tell a person about a refusal, the form field to fix, and whether
    the same attempt could succeed later."""

    hint: str
    field: str
    transient: bool
    code: str = ""


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


THROTTLING_HINT = "The server is throttling: lower Messages per minute."

# Provider texts of a rate or connection limit: Microsoft 365 ("Concurrent
# connections limit exceeded", "Message submission rate for this client has
# exceeded the configured limit"), Google ("4.7.28 ... receiving mail at a rate
# that prevents additional messages"), and the common words.
_THROTTLING_TEXT = re.compile(
    r"throttl|rate limit|rate-limit|too many (?:messages|connections|recipients"
    r"|sessions|concurrent)|concurrent connections? limit|connection limit"
    r"|receiving mail at a rate|submission rate|exceeded the configured limit"
    r"|(?<![\d.])4\.7\.28(?![\d.])",
    re.IGNORECASE,
)


def throttling(code: int | None, text: str) -> bool:
    """Whether a reply says the server is limiting this client's rate or
    connections (a temporary refusal: later, and slower, it will be accepted).

    421 (closing: busy or over a limit), 432 4.3.2 and 452 4.5.3 (too many
    recipients in this session or minute) are; so is any 4xx reply in a
    provider's words for a rate limit. A 5xx reply never is.
    """
    if code is None or not 400 <= code < 500:
        return False
    if code in (421, 432):
        return True
    match = _ENHANCED.match(text or "")
    enhanced = ".".join(match.groups()) if match else ""
    if enhanced in ("4.3.2", "4.5.3"):
        return True
    return bool(_THROTTLING_TEXT.search(text or ""))


def _throttled(refusal: Refusal) -> bool:
    return throttling(refusal.code, refusal.text)


def _explain_throttled(refusal: Refusal) -> Diagnosis:
    return Diagnosis(
        hint=THROTTLING_HINT + " The email waits and is sent later; no retry is used.",
        field="",
        transient=True,
        code=THROTTLED,
    )


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


def _login_or_alias_rule(server: SmtpServer) -> str:
    """The rule most providers apply to a logged-in client's sender, if it logs in."""
    if not server.authenticates:
        return ""
    return (
        " Many providers require the sender to be the login "
        f"({server.username}) or one of its verified aliases."
    )


def _explain_bounce_address(refusal: Refusal) -> Diagnosis:
    server = refusal.server
    hint = (
        f"The server refused the envelope sender (MAIL FROM) {refusal.sender}, the "
        "Bounce address: set Bounce address to an address this account may send "
        "as, or clear it to use the Sender."
    )
    hint += _login_or_alias_rule(server)
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
        hint += _login_or_alias_rule(server)
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


# Enhanced codes of a password login refused because the provider no longer
# takes passwords: Microsoft 365 (5.7.139 Basic authentication is disabled,
# 5.7.30 Basic authentication is not supported for Client Submission), and
# 5.7.3 (RFC 4954 "authentication mechanism is too weak" as Exchange and others
# use it). Google's 5.7.9 counts when it asks for an application-specific
# password.
_BASIC_AUTH_DISABLED_CODES = ("7.139", "7.30", "7.3")


def _basic_auth_disabled(refusal: Refusal) -> bool:
    if refusal.step != "auth" or not uses_password(refusal.server):
        return False
    if refusal.detail_code in _BASIC_AUTH_DISABLED_CODES:
        return True
    text = refusal.lowered
    return refusal.detail_code == "7.9" and (
        "application-specific password" in text or "basic auth" in text
    )


def _explain_basic_auth_disabled(refusal: Refusal) -> Diagnosis:
    hint = BASIC_AUTH_DISABLED_HINT
    provider = basic_auth_retirement(refusal.server.host)
    if refusal.detail_code == "7.9" or (provider and provider.provider == "Google"):
        hint += " (Google still accepts an app password as Password.)"
    return Diagnosis(
        hint=_deferred(hint) if refusal.temporary else hint,
        field="password",
        transient=refusal.temporary,
        code=BASIC_AUTH_DISABLED,
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
    (_throttled, _explain_throttled),
    (_starttls_required, _explain_starttls_required),
    (_login_required, _explain_login_required),
    (_helo_rejected, _explain_helo_rejected),
    (_client_rejected, _explain_client_rejected),
    (_sender_refused, _explain_sender),
    (_relay_denied, _explain_relay_denied),
    (_basic_auth_disabled, _explain_basic_auth_disabled),
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
            f"implicit TLS on this port (then choose {IMPLICIT_TLS_MODE}), or be "
            "overloaded."
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
                "from a trusted CA on the server, or tick Skip certificate "
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
                "install the full certificate chain on the server. Skip "
                "certificate verification skips the check (the connection is then "
                "open to impersonation)."
            )
        else:
            hint = (
                "Fix the server's certificate, or tick Skip certificate verification."
            )
        trust = (_SELF_SIGNED_LEAF, _SELF_SIGNED_IN_CHAIN, *_UNTRUSTED_ISSUER)
        return Explanation(
            detail=f"Certificate verification failed: {message}.",
            hint=hint,
            field="use_insecure" if code in trust else "host",
        )
    if isinstance(error, ssl.SSLError):
        reason = (error.reason or str(error)).lower().replace("_", " ")
        if any(alert in reason for alert in _CLIENT_CERTIFICATE_ALERTS):
            return explain_client_certificate_refusal(error, server=server)
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
        hint = (
            "The server and this console share no TLS version or cipher "
            "(at least TLS 1.2 is required)."
        )
        if "handshake failure" in reason and server.client_certificate is None:
            # TLS 1.2 servers answer a missing client certificate this way too.
            hint += " Or the server requires a client certificate: add one."
        return Explanation(
            detail=f"TLS handshake failed: {reason}.",
            hint=hint,
            field="use_tls",
        )
    return None


def xoauth2_refusal_hint(server: SmtpServer) -> str:
    """What a server's refusal of a fresh OAuth2 token means, by provider."""
    provider = server.oauth2.provider if server.oauth2 is not None else ""
    if provider == "microsoft":
        return (
            "Microsoft issued the token but Exchange Online refused it for this "
            "mailbox: check that the app has the SMTP.SendAsApp permission with "
            "admin consent, that its service principal is registered in Exchange "
            "Online (New-ServicePrincipal) with permission on the mailbox "
            "(Add-MailboxPermission), that SMTP AUTH is enabled for the mailbox, "
            "and that Username is that mailbox."
        )
    if provider == "google":
        return (
            "Google issued the token but Gmail refused it: check that Username is "
            "the mailbox the service account acts for, and that domain-wide "
            "delegation grants https://mail.google.com/."
        )
    return (
        "The server refused the token: check Username (the mailbox) and that the "
        "client may send mail for it (Scope)."
    )


# TLS alerts a server sends about the client's certificate: TLS 1.3's
# "certificate required" (the client sent none), and a certificate it did not
# accept (unknown CA, bad, expired, revoked).
_CLIENT_CERTIFICATE_ALERTS = (
    "alert certificate required",
    "alert unknown ca",
    "alert bad certificate",
    "alert certificate unknown",
    "alert certificate expired",
    "alert certificate revoked",
    "alert unsupported certificate",
)
CLIENT_CERTIFICATE_REQUIRED_HINT = (
    "The server requires a client certificate: add the Client certificate and "
    "Client key it accepts (mutual TLS), issued by a CA the server trusts."
)
CLIENT_CERTIFICATE_REFUSED_HINT = (
    "The server did not accept the client certificate: check that it is issued by "
    "a CA the server trusts, for the name it expects, and not expired; then upload "
    "the right Client certificate and Client key."
)


def _closed(error: BaseException) -> bool:
    return isinstance(
        error, ssl.SSLEOFError | ConnectionError | smtplib.SMTPServerDisconnected
    ) and not isinstance(error, ssl.SSLCertVerificationError)


def explain_client_certificate_refusal(
    error: BaseException, *, server: SmtpServer
) -> Explanation | None:
    """A server that refused the client's certificate (or its absence) during or
    right after the TLS handshake: with TLS 1.3 the server decides after the
    client's last handshake message, so the client learns it at its first read,
    as an alert ("certificate required", "unknown ca"...) or, from servers that
    send no alert (aiosmtpd, for one), as the connection closing. ``None`` for
    anything else."""
    # The SMTP client reports a failed read as a closed connection, with the
    # TLS error's text.
    reason = f"{getattr(error, 'reason', '') or ''} {error}".lower().replace("_", " ")
    alert = next((a for a in _CLIENT_CERTIFICATE_ALERTS if a in reason), "")
    if not alert and not _closed(error):
        return None
    has_certificate = server.client_certificate is not None
    what = (
        f"The server then sent the TLS alert '{alert}'"
        if alert
        else "The server then closed the connection before answering"
    )
    # A close alone is likely, not certain, to mean that: it is retried (system
    # emails), an alert is not.
    transient = not alert
    if has_certificate:
        return Explanation(
            detail=f"{what}.",
            hint=CLIENT_CERTIFICATE_REFUSED_HINT,
            field="client_cert",
            code=CLIENT_CERTIFICATE_REFUSED,
            transient=transient,
        )
    if not alert:
        hint = (
            "The server closed the connection as soon as TLS was set up, which is "
            "how servers that require a client certificate answer a client "
            "without one. " + CLIENT_CERTIFICATE_REQUIRED_HINT
        )
    else:
        hint = CLIENT_CERTIFICATE_REQUIRED_HINT
    return Explanation(
        detail=f"{what}.",
        hint=hint,
        field="client_cert",
        code=CLIENT_CERTIFICATE_REQUIRED,
        transient=transient,
    )
