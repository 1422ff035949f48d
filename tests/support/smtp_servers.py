"""Real SMTP servers for tests: aiosmtpd on loopback, with certificates made here.

Nothing is mocked: the delivery engine talks SMTP over TCP (plain, STARTTLS or
implicit TLS) to these servers, which authenticate, refuse, defer or stay silent
as each test needs.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from smtp.delivery.server import OAuth2Client, Secret, SmtpServer
from smtp.models import AuthMethod, Level, Security
from smtp.sink import SinkHandler

# -- certificates --------------------------------------------------------------


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Certificates:
    ca: Path  # the CA certificate clients trust (SMTP_CA_BUNDLE)
    server: CertPair  # signed by the CA for localhost, 127.0.0.1 and ::1
    self_signed: CertPair
    expired: CertPair  # signed by the CA, expired yesterday
    wrong_host: CertPair  # signed by the CA for other.example only
    # Mutual TLS: the CA servers trust for client certificates, a client
    # certificate it signed, one it signed that expires in ten days, and one
    # signed by a CA nobody trusts.
    client_ca: Path
    client: CertPair
    client_expiring: CertPair
    client_expired: CertPair
    client_untrusted: CertPair


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(directory: Path, stem: str, cert, key) -> CertPair:
    cert_path = directory / f"{stem}.crt"
    key_path = directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return CertPair(cert_path, key_path)


def _certificate(
    *,
    subject: str,
    key,
    issuer_name: x509.Name,
    issuer_key,
    names: list[str],
    ca: bool = False,
    client: bool = False,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
):
    now = datetime.datetime.now(datetime.UTC)
    alternative = [
        x509.IPAddress(ipaddress.ip_address(n)) if _is_ip(n) else x509.DNSName(n)
        for n in names
    ]
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - datetime.timedelta(days=1))
        .not_valid_after(not_after or now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    # The extensions a strict verifier expects (Python 3.13 sets
    # VERIFY_X509_STRICT): key identifiers chain the leaf to its issuer, and key
    # usage says what each key may do.
    builder = builder.add_extension(
        x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
    ).add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
        critical=False,
    )
    if alternative:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(alternative), critical=False
        )
    if not ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        ).add_extension(
            # A client certificate (mutual TLS) is for the client's side.
            x509.ExtendedKeyUsage(
                [
                    ExtendedKeyUsageOID.CLIENT_AUTH
                    if client
                    else ExtendedKeyUsageOID.SERVER_AUTH
                ]
            ),
            critical=False,
        )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def make_certificates(directory: Path) -> Certificates:
    """A test CA and the server certificates the tests need, written as PEM files."""
    directory.mkdir(parents=True, exist_ok=True)
    local = ["localhost", "127.0.0.1", "::1"]
    ca_key = _key()
    ca_name = _name("Ops Console Test CA")
    ca_cert = _certificate(
        subject="Ops Console Test CA",
        key=ca_key,
        issuer_name=ca_name,
        issuer_key=ca_key,
        names=[],
        ca=True,
    )
    ca = _write(directory, "ca", ca_cert, ca_key)

    def signed(stem: str, names: list[str], **dates) -> CertPair:
        key = _key()
        cert = _certificate(
            subject=names[0],
            key=key,
            issuer_name=ca_name,
            issuer_key=ca_key,
            names=names,
            **dates,
        )
        return _write(directory, stem, cert, key)

    self_key = _key()
    self_cert = _certificate(
        subject="localhost",
        key=self_key,
        issuer_name=_name("localhost"),
        issuer_key=self_key,
        names=local,
    )
    now = datetime.datetime.now(datetime.UTC)
    client_ca_key = _key()
    client_ca_name = _name("Ops Console Test Client CA")
    client_ca = _write(
        directory,
        "client-ca",
        _certificate(
            subject="Ops Console Test Client CA",
            key=client_ca_key,
            issuer_name=client_ca_name,
            issuer_key=client_ca_key,
            names=[],
            ca=True,
        ),
        client_ca_key,
    )

    def client(stem: str, subject: str, *, issuer=None, **dates) -> CertPair:
        issuer_name, issuer_key = issuer or (client_ca_name, client_ca_key)
        dates.setdefault("not_after", now + datetime.timedelta(days=365))
        key = _key()
        cert = _certificate(
            subject=subject,
            key=key,
            issuer_name=issuer_name,
            issuer_key=issuer_key,
            names=[],
            client=True,
            **dates,
        )
        return _write(directory, stem, cert, key)

    stranger_key = _key()
    return Certificates(
        client_ca=client_ca.cert,
        client=client("client", "console.acme.example"),
        client_expiring=client(
            "client-expiring",
            "expiring.acme.example",
            not_after=now + datetime.timedelta(days=10),
        ),
        client_expired=client(
            "client-expired",
            "expired.acme.example",
            not_before=now - datetime.timedelta(days=30),
            not_after=now - datetime.timedelta(days=1),
        ),
        client_untrusted=client(
            "client-untrusted",
            "stranger.acme.example",
            issuer=(_name("Unknown CA"), stranger_key),
        ),
        ca=ca.cert,
        server=signed("server", local),
        self_signed=_write(directory, "self-signed", self_cert, self_key),
        expired=signed(
            "expired",
            local,
            not_before=now - datetime.timedelta(days=30),
            not_after=now - datetime.timedelta(days=1),
        ),
        wrong_host=signed("wrong-host", ["other.example"]),
    )


def server_context(pair: CertPair, client_ca: Path | None = None) -> ssl.SSLContext:
    """A server's TLS context; with ``client_ca``, clients must present a
    certificate that CA signed (``ssl.CERT_REQUIRED``)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pair.cert, pair.key)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=client_ca)
    return context


# -- servers -------------------------------------------------------------------


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


# Microsoft 365 once Basic authentication is off for the tenant (MC786329).
BASIC_AUTH_DISABLED_REPLY = (
    "535 5.7.139 Authentication unsuccessful, basic authentication is disabled"
)

# Postfix's reply to MAIL FROM and AUTH before STARTTLS, with
# smtpd_tls_security_level = encrypt.
STARTTLS_FIRST = "530 5.7.0 Must issue a STARTTLS command first"


@dataclass
class Behaviour:
    """What a test server does beyond accepting mail."""

    defer_data_times: int = 0  # answer DATA with 451 this many times first
    refuse_recipients: set[str] = field(default_factory=set)  # 550 for these
    refuse_sender: bool = False  # 553 for every MAIL FROM
    data_delay: float = 0.0  # seconds to wait before accepting DATA
    # The reply to every RCPT TO, word for word (e.g. a Postfix restriction).
    rcpt_reply: str = ""
    # Postfix's smtpd_tls_security_level = encrypt: MAIL FROM and AUTH get
    # STARTTLS_FIRST until the session is encrypted.
    require_starttls: bool = False
    # 451 to the DATA of every second message on a connection.
    defer_every_other: bool = False
    # 451 "greylisted" to the first RCPT TO of each recipient.
    greylist: bool = False
    # After this many messages on a connection, MAIL FROM gets a 421 and the
    # server hangs up (0: no limit); with ``hang_up``, it hangs up without a word
    # right after the last message.
    messages_per_connection: int = 0
    hang_up: bool = False
    # A provider that no longer takes passwords ("retired" basic auth): every
    # PLAIN/LOGIN exchange, whatever the credentials, ends with this reply.
    auth_reply: str = ""
    # The reply to every DATA, word for word (e.g. a provider's policy refusal).
    data_reply: str = ""
    # Offer PIPELINING (RFC 2920) in the EHLO reply, as Postfix, Microsoft 365
    # and Gmail do (aiosmtpd reads pipelined commands in order either way);
    # False: a server that does not, and gets one command at a time.
    pipelining: bool = True


def _encrypted(server, session) -> bool:
    return session.ssl is not None or server._tls_protocol is not None


DEFER_REPLY = "451 4.3.0 Temporary local problem"
GREYLIST_REPLY = "451 4.7.1 Greylisted, please try again later"


class TestHandler(SinkHandler):
    """The sink handler, with the refusals and delays of a ``Behaviour``; it
    keeps what clients said (EHLO names, MAIL FROM options, RCPT TO addresses)."""

    def __init__(self, behaviour: Behaviour):
        super().__init__()
        self.behaviour = behaviour
        self.data_calls = 0
        self.sessions = 0
        self.ehlo_names: list[str] = []
        self.mail_froms: list[tuple[str, list[str]]] = []
        self.rcpt_tos: list[str] = []
        self.resets = 0
        # 4xx replies given, by code and command: ("data", 451), ...
        self.deferrals: list[tuple[str, int]] = []
        self.greylisted: set[str] = set()

    def _defer(self, command: str, reply: str) -> str:
        self.deferrals.append((command, int(reply[:3])))
        return reply

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.sessions += 1
        self.ehlo_names.append(hostname)
        session.host_name = hostname
        if self.behaviour.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_AUTH(self, server, session, envelope, args):
        if self.behaviour.require_starttls and not _encrypted(server, session):
            return STARTTLS_FIRST
        return MISSING  # aiosmtpd's own AUTH

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.mail_froms.append((address, list(mail_options)))
        if self.behaviour.require_starttls and not _encrypted(server, session):
            return STARTTLS_FIRST
        if self.behaviour.refuse_sender:
            return "553 5.7.1 Sender address rejected: not owned by user"
        limit = self.behaviour.messages_per_connection
        if limit and getattr(session, "accepted", 0) >= limit:
            # Pushed before the connection closes (asyncio flushes on close).
            asyncio.get_running_loop().call_soon(server.transport.close)
            return self._defer("mail", "421 4.7.0 Too many messages, closing")
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.rcpt_tos.append(address)
        if self.behaviour.rcpt_reply:
            return self.behaviour.rcpt_reply
        if address in self.behaviour.refuse_recipients:
            return "550 5.1.1 User unknown"
        if self.behaviour.greylist and address not in self.greylisted:
            self.greylisted.add(address)
            return self._defer("rcpt", GREYLIST_REPLY)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_RSET(self, server, session, envelope):
        self.resets += 1
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        import asyncio

        self.data_calls += 1
        if self.data_calls <= self.behaviour.defer_data_times:
            return self._defer("data", DEFER_REPLY)
        if self.behaviour.data_reply:
            return self.behaviour.data_reply
        session.messages = getattr(session, "messages", 0) + 1
        if self.behaviour.defer_every_other and session.messages % 2 == 0:
            return self._defer("data", DEFER_REPLY)
        if self.behaviour.data_delay:
            await asyncio.sleep(self.behaviour.data_delay)
        session.accepted = getattr(session, "accepted", 0) + 1
        limit = self.behaviour.messages_per_connection
        if self.behaviour.hang_up and session.accepted == limit:
            asyncio.get_running_loop().call_soon(server.transport.close)
        return await super().handle_DATA(server, session, envelope)


class CountingController(Controller):
    """A controller that counts the TCP connections it accepts."""

    connections = 0

    def factory(self):
        self.connections += 1
        return super().factory()


class SmtpTestServer:
    """An aiosmtpd server on 127.0.0.1 with the given TLS and AUTH options."""

    def __init__(
        self,
        *,
        starttls: CertPair | None = None,
        implicit_tls: CertPair | None = None,
        users: dict[str, str] | None = None,
        behaviour: Behaviour | None = None,
        address: str = "127.0.0.1",
        port: int | None = None,
        smtputf8: bool = False,
        handler: TestHandler | None = None,
        client_ca: Path | None = None,
    ):
        # ``handler`` with auth_* methods of its own (XOAUTH2) offers only those.
        self.handler = handler or TestHandler(behaviour or Behaviour())
        self.address = address
        self.users = users
        self.auth_attempts = 0
        kwargs: dict = {}
        if starttls is not None:
            kwargs["tls_context"] = server_context(starttls, client_ca)
        if implicit_tls is not None:
            kwargs["ssl_context"] = server_context(implicit_tls, client_ca)
        if handler is not None:
            kwargs["auth_exclude_mechanism"] = ["LOGIN", "PLAIN"]
            kwargs["auth_require_tls"] = implicit_tls is None
        elif users is not None:
            kwargs["authenticator"] = self._authenticate
            # Implicit TLS is TLS from the start; aiosmtpd only knows STARTTLS.
            # A server that refuses AUTH before STARTTLS itself offers it before.
            kwargs["auth_require_tls"] = (
                implicit_tls is None
                and starttls is not None
                and not self.handler.behaviour.require_starttls
            )
        self.port = port or free_port(address)
        self.controller = CountingController(
            self.handler,
            hostname=address,
            port=self.port,
            ready_timeout=10,
            server_hostname="smtp.test",
            enable_SMTPUTF8=smtputf8,
            **kwargs,
        )
        self.controller.start()
        # start() connects once to check the server is up: that one is not a client.
        self.controller.connections = 0

    @property
    def connections(self) -> int:
        """TCP connections accepted from clients."""
        return self.controller.connections

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        self.auth_attempts += 1
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        if self.handler.behaviour.auth_reply:
            return AuthResult(
                success=False, handled=False, message=self.handler.behaviour.auth_reply
            )
        login = auth_data.login.decode()
        password = auth_data.password.decode()
        return AuthResult(success=self.users.get(login) == password, handled=False)

    @property
    def messages(self):
        return self.handler.messages

    def stop(self) -> None:
        self.controller.stop()


class SilentListener:
    """Accepts TCP connections and never says a word (a hung server)."""

    def __init__(self, address: str = "127.0.0.1", port: int = 0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((address, port))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def stop(self) -> None:
        self.sock.close()
        for connection in self.accepted:
            connection.close()


def smtp_settings(
    port: int,
    *,
    auth_method: AuthMethod = AuthMethod.PASSWORD,
    oauth2: OAuth2Client | None = None,
    host: str = "localhost",
    security: Security = Security.NONE,
    username: str = "",
    password: str = "",
    insecure: bool = False,
    trusted: bool = False,
    retries: int = 3,
    sender: str = "alerts@acme.example",
) -> SmtpServer:
    return SmtpServer(
        level=Level.PARTNER,
        host=host,
        port=port,
        security=security,
        use_insecure=insecure,
        username=username,
        password=Secret(password),
        retries=retries,
        sender_email=sender,
        sender_origin="configured",
        trusted=trusted,
        auth_method=auth_method,
        oauth2=oauth2,
    )


def stopped_after(make: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """The body of a fixture that yields ``start(**options)``: each call makes a
    server with ``make(**options)``; every server made is stopped afterwards.

        @pytest.fixture
        def smtp_server():
            yield from stopped_after(SmtpTestServer)
    """
    made: list = []

    def start(**options: Any) -> Any:
        server = make(**options)
        made.append(server)
        return server

    yield start
    for server in made:
        server.stop()
