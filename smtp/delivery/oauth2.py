"""OAuth2 access tokens for XOAUTH2: the token client and its cache.

Two grants: client credentials (Microsoft Entra ID, whose endpoint comes from the
tenant ID, and custom providers with a token URL) and the JWT bearer grant of a
Google service account (RS256, signed with ``cryptography``). Requests go over
HTTPS, verified against ``SMTP_OAUTH2_CA_BUNDLE`` (else ``SMTP_CA_BUNDLE`` and
the system's CAs), within the session's deadline; a custom token URL passes the
same network policy as SMTP hosts. A refusal is read into a hint that names the
field to fix. Tokens are cached in memory per client, never logged, and asked
for again shortly before they expire.
"""

from __future__ import annotations

import base64
import concurrent.futures
import http.client
import ipaddress
import json
import os
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from django.conf import settings

from core.redaction import remember
from smtp.delivery.client import DeadlineExceeded
from smtp.delivery.network import Resolver, dns_pool, system_resolver, tls_context
from smtp.delivery.server import OAuth2Client, Secret
from smtp.enums import OAuth2Provider
from smtp.netpolicy import address_permitted

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# A token answer is a few KiB; more is not a token endpoint.
MAX_RESPONSE_BYTES = 64 * 1024
# Lifetime of the JWT a service account signs (Google accepts at most an hour).
ASSERTION_SECONDS = 3600
# A token is asked for again this long before it expires (at most a tenth of
# its lifetime, so that short-lived tokens are used at all).
REFRESH_MARGIN_SECONDS = 60.0
CACHE_MAX = 1024
USER_AGENT = "opsconsole-smtp (XOAUTH2 token client)"

PROVIDER_NAMES = {
    OAuth2Provider.MICROSOFT: "Microsoft Entra ID",
    OAuth2Provider.GOOGLE: "Google",
    OAuth2Provider.CUSTOM: "the token endpoint",
}


class TokenError(Exception):
    """The token could not be had: what happened, the fix, and the field to fix."""

    def __init__(
        self,
        detail: str,
        *,
        hint: str,
        field: str = "",
        transient: bool = False,
        status: int | None = None,
        blocked: bool = False,
    ):
        super().__init__(detail)
        self.detail = detail
        self.hint = hint
        self.field = field
        self.transient = transient
        self.status = status
        self.blocked = blocked


@dataclass(frozen=True)
class Token:
    """An access token, when it expires, and whether it came from the cache."""

    value: Secret
    expires_on: datetime
    from_cache: bool = False


# -- the endpoint ----------------------------------------------------------------


def token_endpoint(client: OAuth2Client) -> str:
    """Where this client's tokens are asked for."""
    if client.provider == OAuth2Provider.MICROSOFT:
        authority = settings.SMTP_OAUTH2_MICROSOFT_AUTHORITY.rstrip("/")
        return f"{authority}/{quote(client.tenant_id, safe='')}/oauth2/v2.0/token"
    if client.provider == OAuth2Provider.GOOGLE:
        return settings.SMTP_OAUTH2_GOOGLE_TOKEN_URL
    return client.token_url


def _ca_bundle() -> str | None:
    return (
        getattr(settings, "SMTP_OAUTH2_CA_BUNDLE", "")
        or getattr(settings, "SMTP_CA_BUNDLE", "")
        or None
    )


def _context() -> ssl.SSLContext:
    bundle = _ca_bundle()
    mtime = os.stat(bundle).st_mtime_ns if bundle else None
    return tls_context(bundle, mtime, insecure=False)


# -- the cache -------------------------------------------------------------------


class TokenCache:
    """Tokens of this process by a digest of the client's settings and mailbox."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # key -> (token, monotonic time to ask again, expiry)
        self._tokens: OrderedDict[str, tuple[Secret, float, datetime]] = OrderedDict()

    def get(self, key: str) -> Token | None:
        with self._lock:
            entry = self._tokens.get(key)
            if entry is None:
                return None
            value, refresh_at, expires_on = entry
            if time.monotonic() >= refresh_at:
                del self._tokens[key]
                return None
            return Token(value=value, expires_on=expires_on, from_cache=True)

    def put(self, key: str, value: Secret, lifetime: float) -> Token:
        margin = min(REFRESH_MARGIN_SECONDS, lifetime / 10)
        expires_on = datetime.now(UTC) + timedelta(seconds=lifetime)
        with self._lock:
            self._tokens[key] = (
                value,
                time.monotonic() + lifetime - margin,
                expires_on,
            )
            self._tokens.move_to_end(key)
            while len(self._tokens) > CACHE_MAX:
                self._tokens.popitem(last=False)
        return Token(value=value, expires_on=expires_on)

    def forget(self, key: str) -> None:
        with self._lock:
            self._tokens.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


cache = TokenCache()


def cache_key(client: OAuth2Client, mailbox: str) -> str:
    return f"{client.digest()}|{mailbox}"


def access_token(
    client: OAuth2Client,
    *,
    mailbox: str,
    trusted: bool,
    budget: Callable[[], float],
    resolver: Resolver = system_resolver,
    refresh: bool = False,
) -> Token:
    """A token for ``mailbox``: the cached one, or a new one (``refresh``: always
    new). Raises ``TokenError``."""
    key = cache_key(client, mailbox)
    if refresh:
        cache.forget(key)
    else:
        cached = cache.get(key)
        if cached is not None:
            return cached
    value, lifetime = request_token(
        client, mailbox=mailbox, trusted=trusted, budget=budget, resolver=resolver
    )
    return cache.put(key, value, lifetime)


# -- the request -----------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def service_account_assertion(
    key_json: str, *, mailbox: str, scope: str, audience: str, now: float
) -> str:
    """The RS256-signed JWT a Google service account presents, acting for
    ``mailbox`` (domain-wide delegation)."""
    try:
        key = json.loads(key_json)
        private = load_pem_private_key(key["private_key"].encode(), None)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise TokenError(
            "The service account key cannot be read.",
            hint="Paste the service account's JSON key again in Service account key.",
            field="oauth2_service_account_key",
        ) from None
    if not isinstance(private, rsa.RSAPrivateKey):
        raise TokenError(
            "The service account key is not an RSA key.",
            hint="Paste a JSON key of the service account in Service account key.",
            field="oauth2_service_account_key",
        )
    header = {"alg": "RS256", "typ": "JWT"}
    if key.get("private_key_id"):
        header["kid"] = key["private_key_id"]
    claims = {
        "iss": key.get("client_email", ""),
        "sub": mailbox,
        "scope": scope,
        "aud": audience,
        "iat": int(now),
        "exp": int(now) + ASSERTION_SECONDS,
    }
    signing_input = (
        f"{_b64url(json.dumps(header, separators=(',', ':')).encode())}."
        f"{_b64url(json.dumps(claims, separators=(',', ':')).encode())}"
    )
    signature = private.sign(
        signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256()
    )
    return f"{signing_input}.{_b64url(signature)}"


def _form(client: OAuth2Client, *, mailbox: str, endpoint: str) -> dict[str, str]:
    scope = client.effective_scope
    if client.provider == OAuth2Provider.GOOGLE:
        assertion = service_account_assertion(
            client.service_account_key.reveal(),
            mailbox=mailbox,
            scope=scope,
            audience=endpoint,
            now=time.time(),
        )
        return {"grant_type": JWT_BEARER_GRANT, "assertion": assertion}
    form = {
        "grant_type": "client_credentials",
        "client_id": client.client_id,
        "client_secret": client.client_secret.reveal(),
    }
    if scope:
        form["scope"] = scope
    return form


def request_token(
    client: OAuth2Client,
    *,
    mailbox: str,
    trusted: bool,
    budget: Callable[[], float],
    resolver: Resolver = system_resolver,
) -> tuple[Secret, float]:
    """Ask the provider for a token; its value and lifetime in seconds."""
    endpoint = token_endpoint(client)
    # Microsoft's and Google's endpoints are the operator's settings; a custom
    # one is the configuration's, and passes the network policy unless the
    # configuration is the operator's own (controller level).
    endpoint_trusted = trusted or client.provider != OAuth2Provider.CUSTOM
    form = _form(client, mailbox=mailbox, endpoint=endpoint)
    status, answer = _post(
        endpoint, form, trusted=endpoint_trusted, budget=budget, resolver=resolver
    )
    if status != 200:
        raise explain_refusal(client, status, answer)
    token = answer.get("access_token")
    custom = client.provider == OAuth2Provider.CUSTOM
    if not isinstance(token, str) or not token:
        raise TokenError(
            f"{PROVIDER_NAMES[client.provider]} answered {status} without an "
            "access token.",
            hint="This is not an OAuth2 token endpoint: check Token URL."
            if custom
            else "The provider's answer was not understood; it is retried.",
            field="oauth2_token_url" if custom else "",
            transient=not custom,
            status=status,
        )
    # Never in a log, whatever logs it later; nor its XOAUTH2 encoding.
    remember(token)
    remember(xoauth2_string(mailbox, token))
    try:
        lifetime = float(answer.get("expires_in", 3600))
    except (TypeError, ValueError):
        lifetime = 3600.0
    return Secret(token), max(lifetime, 0.0)


def xoauth2_string(user: str, token: str) -> str:
    """The XOAUTH2 initial response, base64-encoded as AUTH sends it."""
    raw = f"user={user}\x01auth=Bearer {token}\x01\x01".encode()
    return base64.b64encode(raw).decode("ascii")


def _policy_error() -> TokenError:
    return TokenError(
        "The token URL's host does not resolve, or resolves to an address that "
        "partner and organization configurations may not reach.",
        hint="Check the spelling of Token URL and use the provider's public "
        "address; if a private address is intended, the operator must allow its "
        "network (SMTP_ALLOWED_NETWORKS).",
        field="oauth2_token_url",
        blocked=True,
    )


def _resolve(
    host: str, port: int, *, trusted: bool, budget: Callable[[], float], resolver
) -> list[tuple]:
    wait = budget()
    future = dns_pool().submit(resolver, host, port)
    try:
        answers = future.result(timeout=wait)
    except concurrent.futures.TimeoutError:
        raise TokenError(
            f"DNS lookup of the token endpoint {host} took longer than {wait:g} s.",
            hint="The DNS server is slow or unreachable; it is retried.",
            transient=True,
        ) from None
    except socket.gaierror as error:
        temporary = error.errno in (socket.EAI_AGAIN,)
        if not temporary and not trusted:
            raise _policy_error() from None
        raise TokenError(
            f"DNS lookup of the token endpoint {host} failed: {error.strerror}.",
            hint="The DNS server did not answer; it is retried."
            if temporary
            else "Check the token endpoint's name (Token URL, or the operator's "
            "SMTP_OAUTH2_* settings).",
            field="" if temporary else "oauth2_token_url",
            transient=temporary,
        ) from None
    if not trusted:
        for answer in answers:
            if not address_permitted(ipaddress.ip_address(answer[4][0])):
                raise _policy_error()
    return answers


def _connect(answers: list[tuple], host: str, *, budget) -> socket.socket:
    problems = []
    for family, socktype, proto, _name, address in answers:
        sock = socket.socket(family, socktype, proto)
        sock.settimeout(budget())
        try:
            sock.connect(address)
        except OSError as error:
            sock.close()
            problems.append(f"{address[0]}: {error.strerror or error}")
            continue
        return sock
    raise TokenError(
        f"Could not connect to the token endpoint {host}: {'; '.join(problems)}.",
        hint="The provider's token endpoint cannot be reached from this console "
        "(a firewall or proxy in the way?); it is retried.",
        transient=True,
    )


def _post(
    url: str,
    form: dict[str, str],
    *,
    trusted: bool,
    budget: Callable[[], float],
    resolver: Resolver,
) -> tuple[int, dict]:
    """POST ``form`` to ``url``; the status and the JSON answer (``{}`` if none)."""
    parts = urlsplit(url)
    https = parts.scheme.lower() == "https"
    if not https and not (
        parts.scheme.lower() == "http" and settings.SMTP_OAUTH2_ALLOW_HTTP
    ):
        raise TokenError(
            "The token URL is not https://.",
            hint="Enter an https:// Token URL (the operator can allow http:// with "
            "SMTP_OAUTH2_ALLOW_HTTP).",
            field="oauth2_token_url",
        )
    host = parts.hostname or ""
    port = parts.port or (443 if https else 80)
    answers = _resolve(host, port, trusted=trusted, budget=budget, resolver=resolver)
    sock = _connect(answers, host, budget=budget)
    try:
        if https:
            sock.settimeout(budget())
            try:
                sock = _context().wrap_socket(sock, server_hostname=host)
            except ssl.SSLCertVerificationError as error:
                raise TokenError(
                    f"The token endpoint's certificate is not trusted: "
                    f"{error.verify_message}.",
                    hint="The operator must add the CA that signed it to "
                    "SMTP_OAUTH2_CA_BUNDLE (a TLS-inspecting proxy?), or Token URL "
                    "names the wrong host.",
                    field="oauth2_token_url",
                ) from None
        connection = http.client.HTTPConnection(host, port, timeout=budget())
        connection.sock = sock
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        connection.request(
            "POST",
            path,
            body=urlencode(form),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            },
        )
        sock.settimeout(budget())
        response = connection.getresponse()
        body = bytearray()
        while len(body) <= MAX_RESPONSE_BYTES:
            # An answer with "Connection: close" closes the socket object once
            # its headers are read (Python 3.13 then refuses settimeout on it);
            # the response reads on through its own file until the end.
            if sock.fileno() != -1:
                sock.settimeout(budget())
            chunk = response.read1(16384)
            if not chunk:
                break
            body += chunk
        status = response.status
    except (TokenError, DeadlineExceeded):
        raise
    except TimeoutError:
        raise TokenError(
            "The token endpoint did not answer in time.",
            hint="The provider is slow or unreachable right now; it is retried.",
            transient=True,
        ) from None
    except (OSError, http.client.HTTPException) as error:
        raise TokenError(
            f"The token request failed: {type(error).__name__}.",
            hint="The connection to the token endpoint broke; it is retried.",
            transient=True,
        ) from None
    finally:
        sock.close()
    if len(body) > MAX_RESPONSE_BYTES:
        raise TokenError(
            "The token endpoint's answer is far too long for a token.",
            hint="This is not an OAuth2 token endpoint: check Token URL.",
            field="oauth2_token_url",
            status=status,
        )
    try:
        answer = json.loads(bytes(body).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        answer = {}
    return status, answer if isinstance(answer, dict) else {}


# -- what a refusal means ------------------------------------------------------------

# Microsoft Entra ID's error codes (AADSTSnnnn): the field to fix and how.
MICROSOFT_CODES: dict[int, tuple[str, str]] = {
    7000215: (
        "oauth2_client_secret",
        "The client secret is wrong: copy the secret's Value (not its Secret ID) "
        "from the app's Certificates & secrets page into Client secret.",
    ),
    7000222: (
        "oauth2_client_secret",
        "The client secret has expired: add a new one under Certificates & "
        "secrets, enter it in Client secret, and update its expiry date.",
    ),
    700016: (
        "oauth2_client_id",
        "No app with this Client ID in this tenant: check Client ID (the "
        "Application (client) ID) and Tenant ID.",
    ),
    7000112: (
        "oauth2_client_id",
        "The app is disabled in this tenant: an administrator must enable it.",
    ),
    90002: (
        "oauth2_tenant_id",
        "This tenant does not exist: check Tenant ID (the Directory (tenant) ID "
        "on the app's Overview page).",
    ),
    900023: (
        "oauth2_tenant_id",
        "Tenant ID is not a tenant: enter the Directory (tenant) ID GUID or the "
        "tenant's domain.",
    ),
    65001: (
        "oauth2_client_id",
        "Admin consent is missing: an administrator must grant admin consent for "
        "the app's SMTP.SendAsApp permission (Office 365 Exchange Online).",
    ),
    500011: (
        "oauth2_scope",
        "Exchange Online is not found in this tenant for this scope: keep Scope "
        "empty (https://outlook.office365.com/.default) and check that the tenant "
        "has Exchange Online.",
    ),
    70011: (
        "oauth2_scope",
        "The scope is not valid: keep Scope empty for the default "
        "(https://outlook.office365.com/.default).",
    ),
}

GENERIC_ERRORS: dict[str, tuple[str, str]] = {
    "invalid_client": (
        "oauth2_client_secret",
        "The provider did not accept the client: check Client ID and Client secret.",
    ),
    "unauthorized_client": (
        "oauth2_client_id",
        "The client may not use this grant: check the app's permissions and admin "
        "consent.",
    ),
    "invalid_scope": ("oauth2_scope", "The scope is not valid: check Scope."),
    "invalid_grant": (
        "oauth2_client_secret",
        "The provider refused the grant: check Client ID and Client secret.",
    ),
}

GOOGLE_ERRORS: dict[str, tuple[str, str]] = {
    "unauthorized_client": (
        "oauth2_service_account_key",
        "Domain-wide delegation is missing: in the Google Admin console (Security > "
        "API controls > Domain-wide delegation), add the service account's client "
        "ID with the scope https://mail.google.com/.",
    ),
    "invalid_client": (
        "oauth2_service_account_key",
        "Google does not know this key: the key was deleted or the service account "
        "disabled. Create a new JSON key and paste it in Service account key.",
    ),
    "invalid_scope": (
        "oauth2_scope",
        "The scope is not valid: keep Scope empty for https://mail.google.com/.",
    ),
}


def _text(value: object, limit: int = 300) -> str:
    text = " ".join(str(value or "").split())
    return text[:limit]


def explain_refusal(client: OAuth2Client, status: int, answer: dict) -> TokenError:
    """A token endpoint's refusal, read into the field to fix."""
    provider = OAuth2Provider(client.provider)
    name = PROVIDER_NAMES[provider]
    error = _text(answer.get("error"), 80)
    description = _text(answer.get("error_description"))
    said = f"{error}: {description}" if description else error or "no error given"
    detail = f"{name} refused the token request ({status} {said})."
    transient = status >= 500 or status == 429
    if transient:
        return TokenError(
            detail,
            hint=f"{name} is unavailable or limiting requests right now; it is "
            "retried.",
            transient=True,
            status=status,
        )
    field, hint = "", ""
    if provider == OAuth2Provider.MICROSOFT:
        codes = answer.get("error_codes") or []
        known = [code for code in codes if isinstance(code, int)]
        for code in known or [_aadsts(description)]:
            if code in MICROSOFT_CODES:
                field, hint = MICROSOFT_CODES[code]
                break
    elif provider == OAuth2Provider.GOOGLE:
        if error == "invalid_grant":
            lowered = description.lower()
            if "email" in lowered or "user" in lowered:
                field, hint = (
                    "username",
                    "Google does not know this mailbox, or the service account may "
                    "not act for it: check Username (a user of the Workspace "
                    "domain).",
                )
            else:
                field, hint = (
                    "oauth2_service_account_key",
                    "Google refused the signed request: paste a current JSON key "
                    "of the service account in Service account key, and check "
                    "the server's clock.",
                )
        elif error in GOOGLE_ERRORS:
            field, hint = GOOGLE_ERRORS[error]
    if not hint and error in GENERIC_ERRORS:
        field, hint = GENERIC_ERRORS[error]
    if not hint:
        hint = f"Check the OAuth2 settings against the app registered with {name}."
        field = "oauth2_client_id" if provider != OAuth2Provider.GOOGLE else ""
    return TokenError(detail, hint=hint, field=field, status=status)


def _aadsts(description: str) -> int:
    """The AADSTS code at the start of a Microsoft error description, or 0."""
    if description.startswith("AADSTS"):
        digits = description[6:].split(":", 1)[0]
        if digits.isdigit():
            return int(digits)
    return 0
