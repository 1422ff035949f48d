"""OAuth2 on the wire: the token step, XOAUTH2, the token cache and its refresh.

Everything is real: the HTTPS token endpoint (tests/support/oauth2.py, with a CA
generated for the suite and trusted through SMTP_OAUTH2_CA_BUNDLE) and aiosmtpd
servers that accept only XOAUTH2 with a token that endpoint issued.
"""

from __future__ import annotations

import base64
import logging
import time
import uuid

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from smtp.delivery import build_message, deliver
from smtp.delivery.oauth2 import service_account_assertion, xoauth2_string
from smtp.delivery.server import OAuth2Client, Secret
from smtp.enums import AuthMethod, OAuth2Provider, Security
from smtp.outbox.pool import ConnectionPool
from tests.support.oauth2 import XOAuth2Handler, service_account_key
from tests.support.smtp_servers import Behaviour, smtp_settings

MAILBOX = "alerts@acme.example"
SECRET = "oauth-secret-CANARY-5hT"


@pytest.fixture(autouse=True)
def patient_sessions(settings):
    """Longer limits than the suite's 3 s: these tests are about OAuth2, not
    slow servers, and must not fail on a busy machine."""
    settings.SMTP_TIMEOUT = 15
    settings.SMTP_SESSION_DEADLINE = 45


@pytest.fixture
def xoauth2_server(smtp_server, certs, trust_test_ca, token_server):
    """A STARTTLS server taking only XOAUTH2 with a token of ``token_server``."""
    handler = XOAuth2Handler(Behaviour(), token_server)
    return smtp_server(starttls=certs.server, handler=handler)


def microsoft(token_server, *, secret: str = SECRET) -> OAuth2Client:
    client_id = str(uuid.uuid4())
    token_server.clients[client_id] = SECRET
    return OAuth2Client(
        provider=OAuth2Provider.MICROSOFT,
        client_id=client_id,
        client_secret=Secret(secret),
        tenant_id="contoso.onmicrosoft.com",
    )


def oauth2_settings(server, client: OAuth2Client, **options):
    return smtp_settings(
        server.port,
        security=Security.STARTTLS,
        username=MAILBOX,
        auth_method=AuthMethod.OAUTH2,
        oauth2=client,
        **options,
    )


def send(settings, **options):
    message = build_message(
        sender=MAILBOX,
        recipient="ops@acme.example",
        subject="Hi",
        body="Body",
        message_id=f"<{uuid.uuid4()}@acme.example>",
    )
    return deliver(
        settings, message, sender=MAILBOX, recipients=["ops@acme.example"], **options
    )


def names(outcome) -> list[str]:
    return [step.name for step in outcome.steps]


def test_token_step_comes_first_then_xoauth2_authenticates(xoauth2_server):
    # given a Microsoft app whose secret the endpoint knows
    token_server = xoauth2_server.handler.token_server
    settings = oauth2_settings(xoauth2_server, microsoft(token_server))

    # when an email is sent through it
    outcome = send(settings)

    # then the token came first, XOAUTH2 authenticated and the email arrived
    assert outcome.ok, outcome.steps
    assert names(outcome)[:2] == ["token", "resolve"]
    token_step = outcome.steps[0]
    assert token_step.status == "ok"
    assert "Microsoft Entra ID" in token_step.detail
    assert "valid until" in token_step.detail
    auth = next(step for step in outcome.steps if step.name == "auth")
    assert auth.status == "ok" and auth.reply_code == 235
    assert xoauth2_server.handler.xoauth2_users == [MAILBOX]
    assert len(xoauth2_server.messages) == 1
    request = token_server.requests[0]
    assert request.path == "/contoso.onmicrosoft.com/oauth2/v2.0/token"
    assert request.form["grant_type"] == "client_credentials"
    assert request.form["scope"] == "https://outlook.office365.com/.default"


def test_two_sends_make_one_token_request(xoauth2_server):
    token_server = xoauth2_server.handler.token_server
    settings = oauth2_settings(xoauth2_server, microsoft(token_server))

    first = send(settings)
    second = send(settings)

    assert first.ok and second.ok
    assert token_server.count == 1
    assert "(new)" in first.steps[0].detail
    assert "(cached)" in second.steps[0].detail
    assert len(xoauth2_server.messages) == 2


def test_an_expired_token_is_asked_for_again_once(xoauth2_server):
    token_server = xoauth2_server.handler.token_server
    token_server.expires_in = 3
    settings = oauth2_settings(xoauth2_server, microsoft(token_server))

    assert send(settings).ok
    time.sleep(3.1)
    outcome = send(settings)

    assert outcome.ok, outcome.steps
    assert token_server.count == 2
    assert "(new)" in outcome.steps[0].detail


def test_a_refused_cached_token_is_refreshed_once_and_retried_once(xoauth2_server):
    # given a token in the cache, which the server then stops accepting
    token_server = xoauth2_server.handler.token_server
    settings = oauth2_settings(xoauth2_server, microsoft(token_server))
    assert send(settings).ok
    token_server.revoke_all()

    # when the next email is sent
    outcome = send(settings)

    # then the 535 (after the error challenge) brought one new token and one retry
    assert outcome.ok, outcome.steps
    assert names(outcome).count("token") == 2
    assert token_server.count == 2
    retried = [step for step in outcome.steps if step.status == "retried"]
    assert [step.name for step in retried] == ["auth"]
    assert retried[0].reply_code == 535
    assert xoauth2_server.handler.xoauth2_refused == 1
    assert len(xoauth2_server.messages) == 2


def test_a_refused_new_token_fails_at_auth_without_retry(xoauth2_server):
    # given an endpoint whose tokens the SMTP server never accepts
    token_server = xoauth2_server.handler.token_server
    settings = oauth2_settings(xoauth2_server, microsoft(token_server))
    xoauth2_server.handler.token_server = type(
        "Nobody", (), {"valid": staticmethod(lambda user, token: False)}
    )()

    outcome = send(settings)

    assert not outcome.ok
    failed = outcome.failed_step
    assert failed.name == "auth" and failed.reply_code == 535
    assert "SMTP.SendAsApp" in failed.hint
    assert failed.field == "username"
    assert token_server.count == 1  # a fresh token is not asked for again
    assert xoauth2_server.messages == []


def test_a_wrong_secret_fails_at_token_naming_the_field_and_opens_no_connection(
    xoauth2_server,
):
    token_server = xoauth2_server.handler.token_server
    settings = oauth2_settings(
        xoauth2_server, microsoft(token_server, secret="not-the-secret")
    )

    outcome = send(settings)

    assert not outcome.ok and not outcome.transient
    assert names(outcome) == ["token"]
    failed = outcome.failed_step
    assert failed.field == "oauth2_client_secret"
    assert "AADSTS7000215" in failed.detail
    assert "Value (not its Secret ID)" in failed.hint
    assert failed.reply_code == 401
    assert xoauth2_server.connections == 0


def test_an_unavailable_endpoint_is_transient(xoauth2_server):
    token_server = xoauth2_server.handler.token_server
    token_server.refuse = "server_error"
    settings = oauth2_settings(xoauth2_server, microsoft(token_server))

    outcome = send(settings)

    assert not outcome.ok and outcome.transient
    assert names(outcome) == ["token"]
    assert xoauth2_server.connections == 0


def test_google_service_account_signs_a_jwt_the_endpoint_verifies(xoauth2_server):
    token_server = xoauth2_server.handler.token_server
    key_json, public = service_account_key()
    token_server.service_accounts["mailer@project.iam.gserviceaccount.com"] = public
    token_server.google_users.add(MAILBOX)
    client = OAuth2Client(
        provider=OAuth2Provider.GOOGLE, service_account_key=Secret(key_json)
    )

    outcome = send(oauth2_settings(xoauth2_server, client))

    assert outcome.ok, outcome.steps
    assert "Google" in outcome.steps[0].detail
    form = token_server.requests[0].form
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert xoauth2_server.handler.xoauth2_users == [MAILBOX]


def test_google_with_a_key_it_does_not_know_names_the_key(xoauth2_server):
    token_server = xoauth2_server.handler.token_server
    key_json, _public = service_account_key()
    _other_json, other_public = service_account_key()
    token_server.service_accounts["mailer@project.iam.gserviceaccount.com"] = (
        other_public
    )
    client = OAuth2Client(
        provider=OAuth2Provider.GOOGLE, service_account_key=Secret(key_json)
    )

    outcome = send(oauth2_settings(xoauth2_server, client))

    failed = outcome.failed_step
    assert failed.name == "token"
    assert failed.field == "oauth2_service_account_key"
    assert "Invalid JWT Signature" in failed.detail


def test_google_without_delegation_names_domain_wide_delegation(xoauth2_server):
    token_server = xoauth2_server.handler.token_server
    key_json, public = service_account_key()
    token_server.service_accounts["mailer@project.iam.gserviceaccount.com"] = public
    token_server.refuse = "unauthorized_client"
    client = OAuth2Client(
        provider=OAuth2Provider.GOOGLE, service_account_key=Secret(key_json)
    )

    failed = send(oauth2_settings(xoauth2_server, client)).failed_step

    assert failed.name == "token"
    assert "Domain-wide delegation" in failed.hint


def test_custom_token_url_on_a_forbidden_network_is_refused(xoauth2_server, settings):
    # given loopback no longer allowed for partner and organization settings
    token_server = xoauth2_server.handler.token_server
    settings.SMTP_ALLOWED_NETWORKS = []
    token_server.clients["custom-client"] = SECRET
    client = OAuth2Client(
        provider=OAuth2Provider.CUSTOM,
        client_id="custom-client",
        client_secret=Secret(SECRET),
        token_url=token_server.url("/custom/token"),
    )

    outcome = send(oauth2_settings(xoauth2_server, client))

    failed = outcome.failed_step
    assert failed.name == "token" and outcome.blocked
    assert failed.field == "oauth2_token_url"
    assert "SMTP_ALLOWED_NETWORKS" in failed.hint
    assert token_server.count == 0


def test_custom_token_url_works_for_the_operators_own_settings(
    xoauth2_server, settings
):
    token_server = xoauth2_server.handler.token_server
    settings.SMTP_ALLOWED_NETWORKS = []
    token_server.clients["custom-client"] = SECRET
    client = OAuth2Client(
        provider=OAuth2Provider.CUSTOM,
        client_id="custom-client",
        client_secret=Secret(SECRET),
        token_url=token_server.url("/custom/token"),
    )

    outcome = send(oauth2_settings(xoauth2_server, client, trusted=True))

    assert outcome.ok, outcome.steps


def test_a_token_endpoint_with_an_untrusted_certificate_is_refused(
    xoauth2_server, settings, tmp_path, certs
):
    token_server = xoauth2_server.handler.token_server
    settings.SMTP_OAUTH2_CA_BUNDLE = str(certs.ca)  # another CA than the endpoint's
    settings.SMTP_CA_BUNDLE = ""
    outcome = send(oauth2_settings(xoauth2_server, microsoft(token_server)))

    failed = outcome.failed_step
    assert failed.name == "token"
    assert "SMTP_OAUTH2_CA_BUNDLE" in failed.hint
    assert token_server.count == 0


def test_xoauth2_is_never_sent_without_tls(smtp_server, token_server):
    # given a plain-text server that offers XOAUTH2 anyway
    handler = XOAuth2Handler(Behaviour(), token_server)
    server = smtp_server(handler=handler)
    settings = smtp_settings(
        server.port,
        username=MAILBOX,
        auth_method=AuthMethod.OAUTH2,
        oauth2=microsoft(token_server),
    )

    outcome = send(settings)

    failed = outcome.failed_step
    assert failed.name == "auth" and failed.field == "use_tls"
    assert handler.xoauth2_users == []


def test_pooled_sessions_reuse_one_token(xoauth2_server):
    token_server = xoauth2_server.handler.token_server
    settings = oauth2_settings(xoauth2_server, microsoft(token_server))
    pool = ConnectionPool()
    try:
        _connection, reused = pool.get(settings)
        assert not reused
        pool.discard(settings)
        _connection, reused = pool.get(settings)
        assert not reused
    finally:
        pool.close_all()
    assert token_server.count == 1
    assert xoauth2_server.handler.xoauth2_accepted == 2


def test_tokens_and_secrets_never_reach_steps_or_logs(xoauth2_server, caplog):
    caplog.set_level(logging.DEBUG)
    token_server = xoauth2_server.handler.token_server
    settings = oauth2_settings(xoauth2_server, microsoft(token_server))
    outcome = send(settings)
    assert outcome.ok
    logging.getLogger("test").warning("echo %s %s", token_server.issued()[0], SECRET)

    shown = " ".join(str(step.as_dict()) for step in outcome.steps) + caplog.text
    token = token_server.issued()[0]
    assert token not in shown
    assert xoauth2_string(MAILBOX, token) not in shown
    assert SECRET not in shown


def test_the_assertion_is_rs256_with_the_mailbox_as_subject():
    key_json, public = service_account_key()
    assertion = service_account_assertion(
        key_json,
        mailbox=MAILBOX,
        scope="https://mail.google.com/",
        audience="https://oauth2.googleapis.com/token",
        now=1_700_000_000,
    )
    header, claims, signature = assertion.split(".")
    public.verify(
        base64.urlsafe_b64decode(signature + "=="),
        f"{header}.{claims}".encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    decoded = base64.urlsafe_b64decode(claims + "==").decode()
    assert '"sub":"alerts@acme.example"' in decoded
    assert '"exp":1700003600' in decoded
    assert '"alg":"RS256"' in base64.urlsafe_b64decode(header + "==").decode()
