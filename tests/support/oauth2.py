"""A real OAuth2 token endpoint for tests, and an SMTP server that takes XOAUTH2.

``TokenServer`` is an HTTPS server on loopback, with a certificate from a CA the
test generates (handed to the app through ``SMTP_OAUTH2_CA_BUNDLE``). It speaks
Microsoft's client-credentials grant (``/<tenant>/oauth2/v2.0/token``), Google's
JWT-bearer grant (``/google/token``, the RS256 signature verified with the test's
public key) and a plain client-credentials endpoint (``/custom/token``); it counts
requests, and can refuse the client or hand out short-lived tokens.

``XOAuth2Handler`` makes an aiosmtpd server accept only ``AUTH XOAUTH2`` with a
token the endpoint issued and has not revoked, answering the RFC 7628 error
challenge otherwise.
"""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from aiosmtpd.smtp import MISSING, AuthResult
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.support.smtp_servers import Behaviour, CertPair, TestHandler

MICROSOFT_SCOPE = "https://outlook.office365.com/.default"
GOOGLE_SCOPE = "https://mail.google.com/"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def service_account_key(email: str = "mailer@project.iam.gserviceaccount.com"):
    """A service account JSON key (text) and its public key, made here."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    key = {
        "type": "service_account",
        "project_id": "project",
        "private_key_id": secrets.token_hex(8),
        "private_key": pem,
        "client_email": email,
        "client_id": "1234567890",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    return json.dumps(key), private.public_key()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class TokenRequest:
    path: str
    form: dict[str, str]
    answered: int = 0


@dataclass
class TokenServer:
    """An HTTPS token endpoint on 127.0.0.1 (see the module's docstring)."""

    cert: CertPair
    port: int = 0
    # client id -> secret (Microsoft and custom)
    clients: dict[str, str] = field(default_factory=dict)
    # service account email -> public key (Google)
    service_accounts: dict[str, object] = field(default_factory=dict)
    # Google users a service account may act for (empty: any)
    google_users: set[str] = field(default_factory=set)
    expires_in: int = 3600
    # "": answer; "invalid_client", "unauthorized_client", "server_error": refuse
    refuse: str = ""
    requests: list[TokenRequest] = field(default_factory=list)
    # token -> (mailbox or client, expiry as time.time())
    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length).decode()
                form = {k: v[0] for k, v in parse_qs(raw).items()}
                status, body = server.answer(self.path, form)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.httpd.server_address[1]
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert.cert, self.cert.key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    # -- state the tests set and read --------------------------------------------

    def reset(self) -> None:
        with self.lock:
            self.clients.clear()
            self.service_accounts.clear()
            self.google_users.clear()
            self.expires_in = 3600
            self.refuse = ""
            self.requests.clear()
            self.tokens.clear()

    @property
    def count(self) -> int:
        return len(self.requests)

    def url(self, path: str) -> str:
        return f"https://localhost:{self.port}{path}"

    def revoke_all(self) -> None:
        """Tokens issued so far stop working (the SMTP server refuses them)."""
        with self.lock:
            self.tokens.clear()

    def valid(self, user: str, token: str) -> bool:
        with self.lock:
            entry = self.tokens.get(token)
        return (
            entry is not None
            and entry[1] > time.time()
            and entry[0]
            in (
                user,
                "*",
            )
        )

    def issued(self) -> list[str]:
        with self.lock:
            return list(self.tokens)

    # -- the endpoint ------------------------------------------------------------

    def _token(self, subject: str) -> tuple[int, dict]:
        token = "tok-" + secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[token] = (subject, time.time() + self.expires_in)
        return 200, {
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "access_token": token,
        }

    def answer(self, path: str, form: dict[str, str]) -> tuple[int, dict]:
        request = TokenRequest(path=path, form=form)
        with self.lock:
            self.requests.append(request)
        status, body = self._answer(path, form)
        request.answered = status
        return status, body

    def _answer(self, path: str, form: dict[str, str]) -> tuple[int, dict]:
        if self.refuse == "server_error":
            return 503, {"error": "temporarily_unavailable"}
        if path.endswith("/oauth2/v2.0/token"):
            return self._microsoft(form)
        if path == "/google/token":
            return self._google(form)
        if path == "/custom/token":
            return self._client_credentials(form, scope=None)
        return 404, {"error": "not_found"}

    def _microsoft(self, form: dict[str, str]) -> tuple[int, dict]:
        if self.refuse == "invalid_client" or (
            self.clients.get(form.get("client_id", "")) != form.get("client_secret")
        ):
            return 401, {
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret "
                "provided. Ensure the secret being sent in the request is the "
                "client secret value, not the client secret ID.",
                "error_codes": [7000215],
            }
        if self.refuse == "unauthorized_client":
            return 400, {
                "error": "unauthorized_client",
                "error_description": "AADSTS700016: Application not found.",
                "error_codes": [700016],
            }
        return self._client_credentials(form, scope=MICROSOFT_SCOPE)

    def _client_credentials(
        self, form: dict[str, str], *, scope: str | None
    ) -> tuple[int, dict]:
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        if self.refuse == "invalid_client" or (
            self.clients.get(form.get("client_id", "")) != form.get("client_secret")
        ):
            return 401, {"error": "invalid_client", "error_description": "Bad client."}
        if scope is not None and form.get("scope") != scope:
            return 400, {"error": "invalid_scope"}
        # Client-credentials tokens act for any mailbox the app may send as.
        return self._token("*")

    def _google(self, form: dict[str, str]) -> tuple[int, dict]:
        if form.get("grant_type") != JWT_BEARER:
            return 400, {"error": "unsupported_grant_type"}
        try:
            header_b64, claims_b64, signature_b64 = form["assertion"].split(".")
            header = json.loads(_b64url_decode(header_b64))
            claims = json.loads(_b64url_decode(claims_b64))
        except (KeyError, ValueError):
            return 400, {"error": "invalid_request"}
        public = self.service_accounts.get(claims.get("iss"))
        if public is None or self.refuse == "invalid_client":
            return 401, {"error": "invalid_client", "error_description": "Bad key."}
        try:
            public.verify(
                _b64url_decode(signature_b64),
                f"{header_b64}.{claims_b64}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            return 400, {
                "error": "invalid_grant",
                "error_description": "Invalid JWT Signature.",
            }
        if header.get("alg") != "RS256" or claims.get("aud") != self.url(
            "/google/token"
        ):
            return 400, {"error": "invalid_grant", "error_description": "Bad JWT."}
        if not claims["iat"] <= time.time() + 5 < claims["exp"]:
            return 400, {"error": "invalid_grant", "error_description": "Expired."}
        if claims.get("scope") != GOOGLE_SCOPE or self.refuse == "unauthorized_client":
            return 401, {
                "error": "unauthorized_client",
                "error_description": "Client is unauthorized to retrieve access "
                "tokens using this method, or client not authorized for any of the "
                "scopes requested.",
            }
        subject = claims.get("sub", "")
        if self.google_users and subject not in self.google_users:
            return 400, {
                "error": "invalid_grant",
                "error_description": "Invalid email or User ID",
            }
        return self._token(subject)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class XOAuth2Handler(TestHandler):
    """The test handler, accepting only XOAUTH2 with a token ``tokens`` issued."""

    def __init__(self, behaviour: Behaviour, tokens: TokenServer):
        super().__init__(behaviour)
        self.token_server = tokens
        self.xoauth2_users: list[str] = []
        self.xoauth2_refused = 0
        self.xoauth2_accepted = 0

    async def auth_XOAUTH2(self, server, args):
        if len(args) == 2:
            try:
                blob = base64.b64decode(args[1], validate=True)
            except ValueError:
                return AuthResult(
                    success=False, handled=False, message="501 5.5.2 Bad base64"
                )
        else:
            blob = await server.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        parts = dict(
            part.split("=", 1) for part in blob.decode().split("\x01") if "=" in part
        )
        user = parts.get("user", "")
        token = parts.get("auth", "").removeprefix("Bearer ")
        self.xoauth2_users.append(user)
        if self.token_server.valid(user, token):
            self.xoauth2_accepted += 1
            return AuthResult(success=True)
        self.xoauth2_refused += 1
        # RFC 7628: an error challenge; the client answers with an empty line.
        challenge = json.dumps(
            {"status": "401", "schemes": "bearer", "scope": "SMTP.Send"}
        )
        answer = await server.challenge_auth(challenge)
        if answer is MISSING:
            return AuthResult(success=False, handled=True)
        return AuthResult(
            success=False,
            handled=False,
            message="535 5.7.3 Authentication unsuccessful",
        )
