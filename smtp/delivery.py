"""The one module that speaks SMTP.

``SmtpConnection`` opens a session with the security mode of the settings (plain,
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

import base64
import concurrent.futures
import errno
import ipaddress
import smtplib
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from email.charset import QP, Charset
from email.header import Header
from email.utils import formatdate
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings as django_settings

from smtp.models import IMPLICIT_TLS_PORT, Security
from smtp.netpolicy import address_permitted
from smtp.selectors import SmtpSettings

POLICY_MESSAGE = (
    "This server address is not allowed for partner or organization "
    "configurations. Use the public address of your SMTP server; if a private "
    "address is intended, the operator must allow its network "
    "(SMTP_ALLOWED_NETWORKS)."
)
REPLY_LIMIT = 300

Resolver = Callable[[str, int], list[tuple]]


@dataclass
class Step:
    """One step of an SMTP session, as shown to a person."""

    name: str
    status: str = "running"  # running, ok, failed
    duration_ms: int = 0
    reply_code: int | None = None
    reply: str = ""
    detail: str = ""
    hint: str = ""
    field: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class StepFailed(Exception):
    """A step failed; ``transient`` failures are worth retrying.

    ``steps`` are the session's steps up to and including the failed one.
    """

    def __init__(
        self,
        step: Step,
        *,
        transient: bool,
        blocked: bool = False,
        steps: list[Step] | None = None,
    ):
        super().__init__(f"{step.name}: {step.detail}")
        self.step = step
        self.transient = transient
        self.blocked = blocked
        self.steps = steps if steps is not None else [step]


@dataclass
class Outcome:
    """The result of sending (or verifying) one message."""

    ok: bool
    steps: list[Step] = field(default_factory=list)
    transient: bool = False
    blocked: bool = False

    @property
    def failed_step(self) -> Step | None:
        return next((s for s in self.steps if s.status == "failed"), None)


def system_resolver(host: str, port: int) -> list[tuple]:
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


@lru_cache(maxsize=1)
def _dns_pool() -> concurrent.futures.ThreadPoolExecutor:
    # getaddrinfo has no timeout of its own; a lookup runs here and is waited
    # for at most SMTP_TIMEOUT.
    return concurrent.futures.ThreadPoolExecutor(
        max_workers=4, thread_name_prefix="smtp-dns"
    )


def ehlo_name() -> str:
    """The name this console gives in EHLO: ``SMTP_EHLO_NAME`` or PUBLIC_URL's host."""
    configured = getattr(django_settings, "SMTP_EHLO_NAME", "")
    return configured or urlsplit(django_settings.PUBLIC_URL).hostname or "localhost"


def _reply_text(raw: bytes | str | None) -> str:
    if raw is None:
        return ""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    text = " ".join(text.split())
    return text[:REPLY_LIMIT]


def _timed_out(error: BaseException) -> bool:
    """A timeout, also when smtplib reports it as a closed connection."""
    if isinstance(error, TimeoutError | socket.timeout):
        return True
    return isinstance(error, smtplib.SMTPServerDisconnected) and "timed out" in str(
        error
    )


def _is_transient_code(code: int | None) -> bool:
    return code is not None and 400 <= code < 500


class SmtpConnection:
    """An SMTP session to the server of ``settings``; reusable for many messages."""

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        timeout: float | None = None,
        resolver: Resolver = system_resolver,
        on_step: Callable[[Step], None] | None = None,
    ):
        self.settings = settings
        self.timeout = float(timeout or django_settings.SMTP_TIMEOUT)
        self.resolver = resolver
        self.on_step = on_step
        self.client: smtplib.SMTP | None = None
        self.steps: list[Step] = []
        self._secrets = self._secret_forms()

    # -- step bookkeeping ----------------------------------------------------

    def _secret_forms(self) -> list[str]:
        """The password and its encodings in AUTH, so that replies never echo them."""
        password = self.settings.password.reveal()
        if not password:
            return []
        user = self.settings.username
        forms = [
            password,
            base64.b64encode(password.encode()).decode(),
            base64.b64encode(f"\0{user}\0{password}".encode()).decode(),
        ]
        return [form for form in forms if form]

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "********")
        return text

    def _begin(self, name: str) -> tuple[Step, float]:
        step = Step(name=name)
        self.steps.append(step)
        self._notify(step)
        return step, time.monotonic()

    def _notify(self, step: Step) -> None:
        if self.on_step is not None:
            self.on_step(step)

    def _finish(self, step: Step, started: float, **values: Any) -> Step:
        for key, value in values.items():
            setattr(step, key, value)
        step.reply = self._redact(step.reply)
        step.detail = self._redact(step.detail)
        step.duration_ms = int((time.monotonic() - started) * 1000)
        if step.status == "running":
            step.status = "ok"
        self._notify(step)
        return step

    def _fail(
        self,
        step: Step,
        started: float,
        *,
        transient: bool,
        blocked: bool = False,
        **values: Any,
    ) -> StepFailed:
        self._finish(step, started, status="failed", **values)
        return StepFailed(
            step, transient=transient, blocked=blocked, steps=list(self.steps)
        )

    def _io_failure(self, step: Step, started: float, error: Exception) -> StepFailed:
        """A timeout or lost connection in the middle of a step (transient)."""
        if _timed_out(error):
            return self._fail(
                step,
                started,
                transient=True,
                detail=f"No reply within {self.timeout:g} s during {step.name}.",
                hint="The server is slow or unreachable right now; it is retried.",
            )
        if isinstance(error, smtplib.SMTPServerDisconnected | ConnectionError):
            return self._fail(
                step,
                started,
                transient=True,
                detail=f"The server closed the connection during {step.name}.",
                hint="The server may be overloaded or limiting connections; it is "
                "retried.",
            )
        return self._fail(
            step,
            started,
            transient=True,
            detail=f"Network error during {step.name}: {error}.",
            hint="Check that the server is reachable from this console.",
        )

    # -- opening -------------------------------------------------------------

    def open(self) -> None:
        """Resolve, connect, TLS, EHLO and AUTH; raises ``StepFailed``."""
        addresses = self._resolve()
        sock = self._connect(addresses)
        client = smtplib.SMTP(local_hostname=ehlo_name(), timeout=self.timeout)
        # smtplib uses _host for SNI and hostname checks in starttls().
        client._host = self.settings.host
        self.client = client
        if self.settings.security == Security.SSL:
            sock = self._implicit_tls(sock)
        client.sock = sock
        self._greeting()
        self._ehlo()
        if self.settings.security == Security.STARTTLS:
            self._starttls()
            self._ehlo(after_tls=True)
        if self.settings.authenticates:
            self._auth()

    def _resolve(self) -> list[tuple]:
        step, started = self._begin("resolve")
        host, port = self.settings.host, self.settings.port
        future = _dns_pool().submit(self.resolver, host, port)
        try:
            answers = future.result(timeout=self.timeout)
        except concurrent.futures.TimeoutError:
            raise self._fail(
                step,
                started,
                transient=True,
                detail=f"DNS lookup of {host} took longer than {self.timeout:g} s.",
                hint="The DNS server is slow or unreachable; it is retried.",
                field="host",
            ) from None
        except socket.gaierror as error:
            temporary = error.errno in (socket.EAI_AGAIN,)
            raise self._fail(
                step,
                started,
                transient=temporary,
                detail=f"DNS lookup of {host} failed: {error.strerror}.",
                hint=(
                    "The DNS server did not answer; it is retried."
                    if temporary
                    else "Check the spelling of Host: this name does not exist."
                ),
                field="host",
            ) from None
        if not self.settings.trusted:
            for answer in answers:
                if not address_permitted(ipaddress.ip_address(answer[4][0])):
                    raise self._fail(
                        step,
                        started,
                        transient=False,
                        blocked=True,
                        detail=POLICY_MESSAGE,
                        hint="Enter the public name or address of your SMTP server.",
                        field="host",
                    )
        shown = ", ".join(dict.fromkeys(answer[4][0] for answer in answers))
        self._finish(step, started, detail=f"{host} resolves to {shown}.")
        return answers

    def _connect(self, answers: list[tuple]) -> socket.socket:
        step, started = self._begin("connect")
        port = self.settings.port
        problems = []
        last_error: OSError | None = None
        for family, socktype, proto, _name, address in answers:
            sock = socket.socket(family, socktype, proto)
            sock.settimeout(self.timeout)
            try:
                sock.connect(address)
            except OSError as error:
                sock.close()
                last_error = error
                problems.append(f"{address[0]}: {self._connect_reason(error)}")
                continue
            self._finish(
                step, started, detail=f"Connected to {address[0]} port {port}."
            )
            return sock
        refused = isinstance(last_error, ConnectionRefusedError)
        timed_out = isinstance(last_error, TimeoutError | socket.timeout)
        if refused:
            hint = (
                f"Nothing accepts connections on port {port}: check Port (587 for "
                "STARTTLS, 465 for implicit TLS, 25 for plain SMTP)."
            )
        elif timed_out:
            hint = (
                f"No answer within {self.timeout:g} s: a firewall may drop "
                f"connections to port {port}, or Host or Port is wrong."
            )
        else:
            hint = "The server's network cannot be reached from this console."
        raise self._fail(
            step,
            started,
            transient=True,
            detail="Could not connect: " + "; ".join(problems) + ".",
            hint=hint,
            field="port" if refused or timed_out else "host",
        )

    def _connect_reason(self, error: OSError) -> str:
        if isinstance(error, ConnectionRefusedError):
            return "connection refused"
        if isinstance(error, TimeoutError | socket.timeout):
            return f"no answer within {self.timeout:g} s"
        if error.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return "network unreachable"
        return error.strerror or str(error)

    def _tls_context(self) -> ssl.SSLContext:
        bundle = getattr(django_settings, "SMTP_CA_BUNDLE", "") or None
        context = ssl.create_default_context(cafile=bundle)
        if bundle:
            context.load_default_certs()
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.settings.use_insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _tls_failure(self, step: Step, started: float, error: Exception) -> StepFailed:
        host, port = self.settings.host, self.settings.port
        if isinstance(error, ssl.SSLCertVerificationError):
            message = error.verify_message or str(error)
            code = error.verify_code
            if code in (18, 19):
                hint = (
                    "The server's certificate is self-signed: install a certificate "
                    "from a trusted CA on the server, or tick Insecure to skip "
                    "verification (the connection is then open to impersonation)."
                )
            elif code == 10:
                hint = "The server's certificate has expired: renew it on the server."
            elif code == 62 or "hostname" in message.lower():
                hint = (
                    f"The certificate is not valid for {host}: enter the host name "
                    "the certificate was issued for, or fix the certificate."
                )
            elif code in (20, 21):
                hint = (
                    "The certificate is signed by a CA this console does not trust: "
                    "install the full certificate chain on the server, or tick "
                    "Insecure to skip verification."
                )
            else:
                hint = "Fix the server's certificate, or tick Insecure to skip checks."
            return self._fail(
                step,
                started,
                transient=False,
                detail=f"Certificate verification failed: {message}.",
                hint=hint,
                field="use_insecure" if code in (18, 19, 20, 21) else "host",
            )
        if isinstance(error, ssl.SSLError):
            reason = (error.reason or str(error)).lower().replace("_", " ")
            if "wrong version number" in reason or "record layer failure" in reason:
                return self._fail(
                    step,
                    started,
                    transient=False,
                    detail=f"TLS handshake failed: {reason}.",
                    hint=(
                        f"Wrong version number: you enabled TLS against a plain port "
                        f"({port}). Use port 465 for implicit TLS, or port 587 for "
                        "STARTTLS, or turn TLS off for a plain-text relay."
                    ),
                    field="port",
                )
            return self._fail(
                step,
                started,
                transient=False,
                detail=f"TLS handshake failed: {reason}.",
                hint="The server and this console share no TLS version or cipher "
                "(at least TLS 1.2 is required).",
                field="use_tls",
            )
        return self._io_failure(step, started, error)

    def _implicit_tls(self, sock: socket.socket) -> ssl.SSLSocket:
        step, started = self._begin("tls")
        try:
            wrapped = self._tls_context().wrap_socket(
                sock, server_hostname=self.settings.host
            )
        except (ssl.SSLError, OSError) as error:
            sock.close()
            raise self._tls_failure(step, started, error) from None
        self._finish(
            step,
            started,
            detail=f"Implicit TLS: {wrapped.version()}, {wrapped.cipher()[0]}"
            + (" (certificate not verified)" if self.settings.use_insecure else ""),
        )
        return wrapped

    def _greeting(self) -> None:
        step, started = self._begin("greeting")
        try:
            code, message = self.client.getreply()
        except (OSError, smtplib.SMTPServerDisconnected) as error:
            # Silence, or a hang-up, before any greeting: typical of a client
            # speaking plain SMTP to a port that expects implicit TLS.
            if self.settings.security == Security.SSL:
                raise self._io_failure(step, started, error) from None
            what = (
                f"no greeting within {self.timeout:g} s"
                if _timed_out(error)
                else "the server hung up before greeting"
            )
            raise self._fail(
                step,
                started,
                transient=True,
                detail=f"Connected, but {what}.",
                hint=(
                    "The server expects implicit TLS on this port; turn on TLS "
                    "(port 465 uses implicit TLS) or use 587 for STARTTLS."
                    if self.settings.port == IMPLICIT_TLS_PORT
                    else "The server accepted the connection but never greeted: it "
                    "may expect implicit TLS (then turn TLS on and use its "
                    "implicit-TLS port, usually 465), or be overloaded."
                ),
                field="port",
            ) from None
        if code != 220:
            raise self._fail(
                step,
                started,
                transient=_is_transient_code(code) or code == -1,
                reply_code=code,
                reply=_reply_text(message),
                detail="The server refused the session in its greeting.",
                hint="The server is not accepting mail from this console right now.",
            )
        self._finish(step, started, reply_code=code, reply=_reply_text(message))

    def _ehlo(self, *, after_tls: bool = False) -> None:
        step, started = self._begin("ehlo")
        try:
            code, message = self.client.ehlo()
        except (OSError, smtplib.SMTPServerDisconnected) as error:
            raise self._io_failure(step, started, error) from None
        if code != 250:
            raise self._fail(
                step,
                started,
                transient=_is_transient_code(code),
                reply_code=code,
                reply=_reply_text(message),
                detail="The server refused EHLO.",
                hint="The server does not speak ESMTP; it cannot be used with TLS or "
                "authentication.",
            )
        features = self.client.esmtp_features
        offered = []
        for name in ("starttls", "auth", "size", "8bitmime", "smtputf8", "pipelining"):
            if name in features:
                value = features[name].strip()
                offered.append(f"{name.upper()} {value}".strip())
        self._finish(
            step,
            started,
            reply_code=code,
            detail=("After TLS, the server offers: " if after_tls else "Offers: ")
            + (", ".join(offered) or "no extensions"),
        )

    def _starttls(self) -> None:
        step, started = self._begin("tls")
        if not self.client.has_extn("starttls"):
            raise self._fail(
                step,
                started,
                transient=False,
                detail="The server does not offer STARTTLS.",
                hint=(
                    "STARTTLS is required when TLS is on (there is no fall-back to "
                    "plain text). Use the server's implicit-TLS port (465), or turn "
                    "TLS off only for a trusted relay without authentication."
                ),
                field="use_tls",
            )
        try:
            code, message = self.client.starttls(context=self._tls_context())
        except smtplib.SMTPResponseException as error:
            raise self._fail(
                step,
                started,
                transient=_is_transient_code(error.smtp_code),
                reply_code=error.smtp_code,
                reply=_reply_text(error.smtp_error),
                detail="The server refused STARTTLS.",
                hint="The server offers STARTTLS but would not start it; retry later "
                "or contact the server's administrator.",
                field="use_tls",
            ) from None
        except (ssl.SSLError, OSError, smtplib.SMTPServerDisconnected) as error:
            raise self._tls_failure(step, started, error) from None
        sock = self.client.sock
        self._finish(
            step,
            started,
            reply_code=code,
            reply=_reply_text(message),
            detail=f"STARTTLS: {sock.version()}, {sock.cipher()[0]}"
            + (" (certificate not verified)" if self.settings.use_insecure else ""),
        )

    def _auth(self) -> None:
        step, started = self._begin("auth")
        username = self.settings.username
        if not self.client.has_extn("auth"):
            raise self._fail(
                step,
                started,
                transient=False,
                detail="The server offers no authentication (AUTH).",
                hint=(
                    "Clear Username and Password if this relay accepts mail without "
                    "login; otherwise check Port, since many servers offer AUTH only "
                    "on 587 (STARTTLS) or 465 (implicit TLS)."
                ),
                field="username",
            )
        try:
            code, message = self.client.login(username, self.settings.password.reveal())
        except smtplib.SMTPAuthenticationError as error:
            transient = _is_transient_code(error.smtp_code)
            raise self._fail(
                step,
                started,
                transient=transient,
                reply_code=error.smtp_code,
                reply=_reply_text(error.smtp_error),
                detail=f"auth failed ({error.smtp_code}) for {username}.",
                hint=(
                    "Temporary authentication failure at the server; it is retried."
                    if transient
                    else "The server refused the username or password: check both. "
                    "Providers such as Gmail or Microsoft 365 need an app password, "
                    "or SMTP AUTH enabled for the mailbox."
                ),
                field="password",
            ) from None
        except smtplib.SMTPException as error:
            if isinstance(error, smtplib.SMTPServerDisconnected):
                raise self._io_failure(step, started, error) from None
            methods = self.client.esmtp_features.get("auth", "").strip()
            raise self._fail(
                step,
                started,
                transient=False,
                detail=f"No common authentication method; the server offers {methods}.",
                hint="This console authenticates with PLAIN, LOGIN or CRAM-MD5; enable "
                "one of them for SMTP clients on the server.",
                field="username",
            ) from None
        except OSError as error:
            raise self._io_failure(step, started, error) from None
        self._finish(
            step,
            started,
            reply_code=code,
            reply=_reply_text(message),
            detail=f"Authenticated as {username}.",
        )

    # -- transactions ----------------------------------------------------------

    def _command(
        self,
        name: str,
        call: Callable[[], tuple[int, bytes]],
        *,
        ok: tuple[int, ...],
        detail: str,
        refused_hint: str,
        refused_field: str,
    ) -> tuple[int, str]:
        step, started = self._begin(name)
        try:
            code, message = call()
        except smtplib.SMTPResponseException as error:
            code, message = error.smtp_code, error.smtp_error
        except (OSError, smtplib.SMTPServerDisconnected) as error:
            raise self._io_failure(step, started, error) from None
        reply = _reply_text(message)
        if code not in ok:
            transient = _is_transient_code(code)
            raise self._fail(
                step,
                started,
                transient=transient,
                reply_code=code,
                reply=reply,
                detail=f"The server refused {name.replace('_', ' ').upper()} ({code}).",
                hint=(
                    "The server deferred the message (4xx); it is retried."
                    if transient
                    else refused_hint
                ),
                field="" if transient else refused_field,
            )
        self._finish(step, started, reply_code=code, reply=reply, detail=detail)
        return code, reply

    def _envelope(self, sender: str, recipients: list[str]) -> None:
        self._command(
            "mail_from",
            lambda: self.client.mail(sender),
            ok=(250,),
            detail=f"Sender {sender} accepted.",
            refused_hint=(
                f"The server refused the sender {sender}: set Sender to an address "
                "this account may send as."
            ),
            refused_field="sender_email",
        )
        for recipient in recipients:
            self._command(
                "rcpt_to",
                lambda recipient=recipient: self.client.rcpt(recipient),
                ok=(250, 251),
                detail=f"Recipient {recipient} accepted.",
                refused_hint=(
                    f"The server refused the recipient {recipient}: check the "
                    "address, or, if it says relaying is denied, authenticate "
                    "(Username and Password) or use a server that relays for you."
                ),
                refused_field="recipient",
            )

    def send(self, message: bytes, *, sender: str, recipients: list[str]) -> str:
        """MAIL FROM, RCPT TO, DATA (``message`` from ``build_message``); returns
        the server's reply to DATA."""
        self._envelope(sender, recipients)
        payload = message
        _code, reply = self._command(
            "data",
            lambda: self.client.data(payload),
            ok=(250,),
            detail=f"Message accepted ({len(payload)} bytes).",
            refused_hint="The server rejected the message itself (content, size or "
            "policy): see its reply.",
            refused_field="",
        )
        return reply

    def verify(self, *, sender: str, recipient: str) -> None:
        """MAIL FROM and RCPT TO, then RSET: proves everything but sends nothing."""
        self._envelope(sender, [recipient])
        self._command(
            "rset",
            self.client.rset,
            ok=(250,),
            detail="Transaction reset: nothing was sent.",
            refused_hint="The server refused RSET.",
            refused_field="",
        )

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


def deliver(
    settings: SmtpSettings,
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
        settings, on_step=on_step, resolver=resolver, timeout=timeout
    )
    try:
        connection.open()
        if verify_only:
            connection.verify(sender=sender, recipient=recipients[0])
        else:
            connection.send(message, sender=sender, recipients=recipients)
    except StepFailed as failure:
        return Outcome(
            ok=False,
            steps=connection.steps,
            transient=failure.transient,
            blocked=failure.blocked,
        )
    finally:
        connection.close()
    return Outcome(ok=True, steps=connection.steps)
