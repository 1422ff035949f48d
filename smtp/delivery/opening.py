"""Opening an SMTP session: resolve, connect, TLS, greeting, EHLO, AUTH.

Addresses are resolved once and checked by the network policy; the connection
goes only to those checked addresses, in turn, while SNI and certificate checks
use the host name. Every socket operation has a timeout.
"""

from __future__ import annotations

import concurrent.futures
import errno
import ipaddress
import os
import smtplib
import socket
import ssl
from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings as django_settings

from core.addresses import AddressError, ascii_domain
from smtp.delivery.client import BoundedSMTP, DeadlineExceeded, ReplyTooLong
from smtp.delivery.hints import (
    IMPLICIT_TLS_MODE,
    STARTTLS_MODE,
    THROTTLED,
    THROTTLING_HINT,
    Refusal,
    diagnose,
    explain_client_certificate_refusal,
    explain_silence,
    explain_tls_error,
    throttling,
    xoauth2_refusal_hint,
)
from smtp.delivery.network import Resolver, dns_pool, system_resolver, tls_context
from smtp.delivery.oauth2 import (
    PROVIDER_NAMES,
    Token,
    TokenError,
    access_token,
    xoauth2_string,
)
from smtp.delivery.server import SmtpServer
from smtp.delivery.steps import (
    Step,
    StepFailed,
    StepRecorder,
    is_transient_code,
    reply_text,
    timed_out,
)
from smtp.enums import OAuth2Provider, Security
from smtp.netpolicy import address_permitted

# Partner and organization hosts that do not resolve get the same answer as
# hosts that resolve to a forbidden address, so that nobody can probe which
# internal names exist.
POLICY_MESSAGE = (
    "This host cannot be used: it does not resolve, or it resolves to an address "
    "that is not allowed for partner or organization configurations. Check the "
    "spelling of Host and use the public address of your SMTP server; if a "
    "private address is intended, the operator must allow its network "
    "(SMTP_ALLOWED_NETWORKS)."
)


def ehlo_name() -> str:
    """The name this console gives in EHLO (and in Message-IDs): ``SMTP_EHLO_NAME``
    or PUBLIC_URL's host.

    RFC 5321 wants a domain or an address literal: an IP address is written
    ``[192.0.2.1]`` or ``[IPv6:2001:db8::1]``, never bare; an international name
    goes as A-labels.
    """
    configured = getattr(django_settings, "SMTP_EHLO_NAME", "").strip()
    name = configured or urlsplit(django_settings.PUBLIC_URL).hostname or "localhost"
    try:
        address = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        pass
    else:
        return f"[IPv6:{address}]" if address.version == 6 else f"[{address}]"
    try:
        return ascii_domain(name)
    except AddressError:
        return "localhost"


class SessionOpener(StepRecorder):
    """The opening half of an SMTP session (``SmtpConnection`` adds the rest)."""

    def __init__(
        self,
        server: SmtpServer,
        *,
        timeout: float | None = None,
        resolver: Resolver = system_resolver,
        on_step: Callable[[Step], None] | None = None,
    ):
        super().__init__(server, timeout=timeout, on_step=on_step)
        self.resolver = resolver
        self.client: smtplib.SMTP | None = None
        self.token: Token | None = None
        # The TLS step just finished, until the server's first reply after it.
        self._handshake: tuple[Step, float] | None = None

    def open(self) -> None:
        """Resolve, connect, TLS, EHLO and AUTH within one deadline; raises
        ``StepFailed`` (also for any unexpected error, with its step)."""
        self.renew_deadline()
        with self.failing_as_steps():
            if self.server.uses_oauth2:
                # Before any connection: a refused token opens no SMTP session.
                self._token()
            addresses = self._resolve()
            sock = self._connect(addresses)
            client = BoundedSMTP(local_hostname=ehlo_name(), budget=self.budget)
            # smtplib uses _host for SNI and hostname checks in starttls().
            client._host = self.server.host
            self.client = client
            if self.server.security == Security.SSL:
                sock = self._implicit_tls(sock)
            client.sock = sock
            self._greeting()
            self._ehlo()
            if self.server.security == Security.STARTTLS:
                self._starttls()
                self._ehlo(after_tls=True)
            if self.server.authenticates:
                self._auth()

    def _resolve(self) -> list[tuple]:
        step, started = self._begin("resolve")
        host, port = self.server.host, self.server.port
        wait = self.budget()
        future = dns_pool().submit(self.resolver, host, port)
        try:
            answers = future.result(timeout=wait)
        except concurrent.futures.TimeoutError:
            raise self._fail(
                step,
                started,
                transient=True,
                detail=f"DNS lookup of {host} took longer than {wait:g} s.",
                hint="The DNS server is slow or unreachable; it is retried.",
                field="host",
            ) from None
        except socket.gaierror as error:
            temporary = error.errno in (socket.EAI_AGAIN,)
            if not temporary and not self.server.trusted:
                raise self._unusable_host(step, started) from None
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
        if not self.server.trusted:
            for answer in answers:
                if not address_permitted(ipaddress.ip_address(answer[4][0])):
                    raise self._unusable_host(step, started)
        shown = ", ".join(dict.fromkeys(answer[4][0] for answer in answers))
        self._finish(step, started, detail=f"{host} resolves to {shown}.")
        return answers

    def _unusable_host(self, step: Step, started: float) -> StepFailed:
        """One answer for a name that does not exist and a forbidden address."""
        return self._fail(
            step,
            started,
            transient=False,
            blocked=True,
            detail=POLICY_MESSAGE,
            hint="Enter the public name or address of your SMTP server.",
            field="host",
        )

    def _connect(self, answers: list[tuple]) -> socket.socket:
        step, started = self._begin("connect")
        port = self.server.port
        problems = []
        last_error: OSError | None = None
        for family, socktype, proto, _name, address in answers:
            sock = socket.socket(family, socktype, proto)
            sock.settimeout(self.budget())
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
        no_answer = isinstance(last_error, TimeoutError | socket.timeout)
        if refused:
            hint = (
                f"Nothing accepts connections on port {port}: check Port (587 for "
                "STARTTLS, 465 for implicit TLS, 25 for plain SMTP)."
            )
        elif no_answer:
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
            field="port" if refused or no_answer else "host",
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
        # The bundle's modification time is part of the key: a replaced bundle
        # is loaded again without a restart.
        mtime = os.stat(bundle).st_mtime_ns if bundle else None
        return tls_context(
            bundle,
            mtime,
            insecure=self.server.use_insecure,
            client=self.server.client_certificate,
        )

    def _tls_failure(self, step: Step, started: float, error: Exception) -> StepFailed:
        explained = explain_tls_error(error, server=self.server)
        if explained is None:
            return self._io_failure(step, started, error)
        return self._fail(
            step,
            started,
            transient=False,
            detail=explained.detail,
            hint=explained.hint,
            field=explained.field,
            hint_code=explained.code,
        )

    def _refused_after_handshake(
        self, step: Step, error: BaseException
    ) -> StepFailed | None:
        """The first read after the TLS handshake failed because the server did
        not accept the client's certificate (or its absence): a failure of the
        ``tls`` step, not of ``step`` (the greeting or EHLO that never came).
        ``None`` if the read failed for another reason."""
        if self._handshake is None:
            return None
        explained = explain_client_certificate_refusal(error, server=self.server)
        if explained is None:
            return None
        tls_step, tls_started = self._handshake
        self._handshake = None
        self.steps.remove(step)
        return self._fail(
            tls_step,
            tls_started,
            transient=explained.transient,
            detail=f"{tls_step.detail}. {explained.detail}",
            hint=explained.hint,
            field=explained.field,
            hint_code=explained.code,
        )

    def _implicit_tls(self, sock: socket.socket) -> ssl.SSLSocket:
        step, started = self._begin("tls")
        try:
            sock.settimeout(self.budget())
            wrapped = self._tls_context().wrap_socket(
                sock, server_hostname=self.server.host
            )
        except (ssl.SSLError, OSError) as error:
            sock.close()
            if isinstance(error, TimeoutError | socket.timeout):
                try:
                    self.budget()
                except DeadlineExceeded as passed:
                    error = passed
            raise self._tls_failure(step, started, error) from None
        self._finish(
            step,
            started,
            detail=f"Implicit TLS: {wrapped.version()}, {wrapped.cipher()[0]}"
            + (" (certificate not verified)" if self.server.use_insecure else ""),
        )
        self._handshake = (step, started)
        return wrapped

    def _greeting(self) -> None:
        step, started = self._begin("greeting")
        try:
            code, message = self.client.getreply()
        except (OSError, smtplib.SMTPServerDisconnected) as error:
            refused = self._refused_after_handshake(step, error)
            if refused is not None:
                raise refused from None
            # Silence, or a hang-up, before any greeting: typical of a client
            # speaking plain SMTP to a port that expects implicit TLS.
            if self.server.security == Security.SSL or isinstance(
                error, DeadlineExceeded | ReplyTooLong
            ):
                raise self._io_failure(step, started, error) from None
            what = (
                f"no greeting within {self.timeout:g} s"
                if timed_out(error)
                else "the server hung up before greeting"
            )
            detail, diagnosis = explain_silence(self.server, what=what)
            raise self._fail(
                step,
                started,
                transient=diagnosis.transient,
                detail=detail,
                hint=diagnosis.hint,
                field=diagnosis.field,
            ) from None
        if code != 220:
            text = reply_text(message)
            throttled = throttling(code, text)
            raise self._fail(
                step,
                started,
                transient=is_transient_code(code) or code == -1,
                reply_code=code,
                reply=text,
                detail="The server refused the session in its greeting.",
                hint=THROTTLING_HINT
                if throttled
                else "The server is not accepting mail from this console right now.",
                hint_code=THROTTLED if throttled else "",
            )
        self._handshake = None
        self._finish(step, started, reply_code=code, reply=reply_text(message))

    def _ehlo(self, *, after_tls: bool = False) -> None:
        step, started = self._begin("ehlo")
        try:
            code, message = self.client.ehlo()
        except (OSError, smtplib.SMTPServerDisconnected) as error:
            refused = after_tls and self._refused_after_handshake(step, error)
            if refused:
                raise refused from None
            raise self._io_failure(step, started, error) from None
        self._handshake = None
        if code != 250:
            raise self._fail(
                step,
                started,
                transient=is_transient_code(code),
                reply_code=code,
                reply=reply_text(message),
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
                    f"plain text). Use the server's implicit-TLS port (465) with "
                    f"{IMPLICIT_TLS_MODE}, or choose Security None only for a "
                    "trusted relay without authentication."
                ),
                field="use_tls",
            )
        try:
            code, message = self.client.starttls(context=self._tls_context())
        except smtplib.SMTPResponseException as error:
            raise self._fail(
                step,
                started,
                transient=is_transient_code(error.smtp_code),
                reply_code=error.smtp_code,
                reply=reply_text(error.smtp_error),
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
            reply=reply_text(message),
            detail=f"STARTTLS: {sock.version()}, {sock.cipher()[0]}"
            + (" (certificate not verified)" if self.server.use_insecure else ""),
        )
        self._handshake = (step, started)

    # -- OAuth2 ----------------------------------------------------------------------

    def _token(self, *, refresh: bool = False) -> None:
        """The ``token`` step: an access token, cached or asked for now."""
        step, started = self._begin("token")
        client = self.server.oauth2
        if client is None:
            raise self._fail(
                step,
                started,
                transient=False,
                detail="Authentication is OAuth2, but no provider is set.",
                hint="Choose a Provider and fill in its settings, then Save.",
                field="oauth2_provider",
            )
        provider = PROVIDER_NAMES[OAuth2Provider(client.provider)]
        try:
            token = access_token(
                client,
                mailbox=self.server.username,
                trusted=self.server.trusted,
                budget=self.budget,
                resolver=self.resolver,
                refresh=refresh,
            )
        except TokenError as error:
            raise self._fail(
                step,
                started,
                transient=error.transient,
                blocked=error.blocked,
                reply_code=error.status,
                detail=error.detail,
                hint=error.hint,
                field=error.field,
            ) from None
        self.token = token
        self.add_secret(token.value.reveal())
        origin = "cached" if token.from_cache else "new"
        if refresh:
            origin = "new, the cached one was refused"
        self._finish(
            step,
            started,
            detail=f"Access token from {provider} for {self.server.username} "
            f"({origin}), valid until "
            f"{token.expires_on.strftime('%Y-%m-%d %H:%M:%S')} UTC.",
        )

    def _auth_xoauth2(self) -> None:
        step, started = self._begin("auth")
        username = self.server.username
        if not isinstance(self.client.sock, ssl.SSLSocket):
            raise self._fail(
                step,
                started,
                transient=False,
                detail="Not sent: XOAUTH2 sends a bearer token, only over TLS.",
                hint="Turn TLS on (STARTTLS on 587 for Microsoft 365 and Google).",
                field="use_tls",
            )
        offered = self.client.esmtp_features.get("auth", "").upper().split()
        if "XOAUTH2" not in offered:
            raise self._fail(
                step,
                started,
                transient=False,
                detail="The server does not offer XOAUTH2"
                + (f" (it offers {' '.join(offered)})." if offered else "."),
                hint="This server does not take OAuth2 tokens: check Host, or set "
                "Authentication to Password.",
                field="auth_method",
            )
        try:
            code, message = self.client.auth_xoauth2(
                xoauth2_string(username, self.token.value.reveal())
            )
        except smtplib.SMTPAuthenticationError as error:
            reply = reply_text(error.smtp_error)
            if error.smtp_code == 535 and self.token.from_cache:
                # A cached token the server no longer takes (revoked, or the
                # permissions changed): one new token, one more try.
                self._finish(
                    step,
                    started,
                    status="retried",
                    reply_code=error.smtp_code,
                    reply=reply,
                    detail="The server refused the cached token: asking for a new "
                    "one, once.",
                )
                self._token(refresh=True)
                self._auth_xoauth2()
                return
            raise self._fail(
                step,
                started,
                transient=is_transient_code(error.smtp_code),
                reply_code=error.smtp_code,
                reply=reply,
                detail=f"auth failed ({error.smtp_code}) for {username} with an "
                "OAuth2 token.",
                hint=xoauth2_refusal_hint(self.server),
                field="username",
            ) from None
        except smtplib.SMTPServerDisconnected as error:
            raise self._io_failure(step, started, error) from None
        except OSError as error:
            raise self._io_failure(step, started, error) from None
        self._finish(
            step,
            started,
            reply_code=code,
            reply=reply_text(message),
            detail=f"Authenticated as {username} with XOAUTH2.",
        )

    def _auth(self) -> None:
        if self.server.uses_oauth2:
            self._auth_xoauth2()
            return
        step, started = self._begin("auth")
        username = self.server.username
        if not self.client.has_extn("auth"):
            if self.client.has_extn("starttls"):
                # Postfix's smtpd_tls_auth_only, and most providers: AUTH is
                # offered only once the session is encrypted.
                hint = (
                    "The server offers AUTH only after STARTTLS: choose "
                    f"{STARTTLS_MODE}."
                )
                field = "use_tls"
            else:
                hint = (
                    "Clear Username and Password if this relay accepts mail without "
                    "login; otherwise check Port, since many servers offer AUTH only "
                    "on 587 (STARTTLS) or 465 (implicit TLS)."
                )
                field = "username"
            raise self._fail(
                step,
                started,
                transient=False,
                detail="The server offers no authentication (AUTH).",
                hint=hint,
                field=field,
            )
        try:
            code, message = self.client.login(username, self.server.password.reveal())
        except smtplib.SMTPAuthenticationError as error:
            reply = reply_text(error.smtp_error)
            diagnosis = diagnose(
                Refusal(
                    step="auth",
                    code=error.smtp_code,
                    text=reply,
                    server=self.server,
                )
            )
            raise self._fail(
                step,
                started,
                transient=diagnosis.transient,
                reply_code=error.smtp_code,
                reply=reply,
                detail=f"auth failed ({error.smtp_code}) for {username}.",
                hint=diagnosis.hint,
                field=diagnosis.field,
                hint_code=diagnosis.code,
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
            reply=reply_text(message),
            detail=f"Authenticated as {username}.",
        )
