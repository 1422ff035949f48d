"""Client certificates (mutual TLS): stored and checked at partner, organization
and controller level, presented in STARTTLS and implicit TLS to aiosmtpd servers
that require one (``ssl.CERT_REQUIRED`` with a client CA made for the test), and
explained when a server wants one and gets none."""

from __future__ import annotations

import json
import ssl

import pytest

from audit.models import AuditEvent
from smtp.delivery import deliver
from smtp.delivery.hints import (
    CLIENT_CERTIFICATE_REFUSED,
    CLIENT_CERTIFICATE_REQUIRED,
)
from smtp.models import Security, SmtpConfiguration
from smtp.selectors import (
    controller_smtp_layer,
    smtp_server_of_configuration,
)
from smtp.services import smtp_config_health_check

pytestmark = pytest.mark.django_db

CONFIG_URL = "/event/v1/email/config"


def pem(pair) -> tuple[str, str]:
    return pair.cert.read_text(), pair.key.read_text()


def key_body(pair) -> str:
    """A line from the middle of the key: what must never be seen in clear."""
    lines = pair.key.read_text().strip().splitlines()
    return lines[1]


def post_config(client, **smtp_config):
    return client.post(
        CONFIG_URL,
        data=json.dumps({"email_config": {"smtp_config": smtp_config}}),
        content_type="application/json",
    )


def verify(server):
    return deliver(
        server,
        None,
        sender=server.sender_email,
        recipients=[server.sender_email],
        verify_only=True,
    )


def mtls_row(partner, port: int, security: Security, pair=None) -> SmtpConfiguration:
    cert, key = pem(pair) if pair else ("", None)
    return SmtpConfiguration.objects.create(
        partner=partner,
        host="localhost",
        port=port,
        security=security,
        sender_email="alerts@acme.example",
        client_cert=cert,
        client_key=key,
    )


# -- stored and checked --------------------------------------------------------------


def test_the_api_stores_the_certificate_and_shows_only_subject_and_expiry(
    demo, login, certs
):
    cert, key = pem(certs.client)
    client = login(demo["acme_admin"])
    response = post_config(
        client, host="smtp.acme.example", client_cert=cert, client_key=key
    )
    assert response.status_code == 201, response.content
    shown = client.get(CONFIG_URL).json()["email_config"]["smtp_config"]
    assert shown["client_certificate"]["subject"] == "CN=console.acme.example"
    assert shown["client_certificate"]["issuer"] == "CN=Ops Console Test Client CA"
    assert shown["client_certificate"]["not_after"]
    assert shown["client_key_set"] is True
    assert "client_key" not in shown
    stored = SmtpConfiguration.objects.get()
    assert stored.client_key == key.strip()  # decrypted by the field, for the handshake
    event = AuditEvent.objects.get(type="smtp_config.created")
    changes = event.detail["changes"]
    assert changes["client_key"] == "set"
    assert changes["client_certificate"][1].startswith("CN=console.acme.example")
    assert key_body(certs.client) not in response.content.decode() + json.dumps(
        event.detail
    )


@pytest.mark.parametrize(
    ("cert_of", "key_of", "field", "message"),
    [
        (None, "client", "client_cert", "Client certificate is not a PEM certificate"),
        ("client", "client_untrusted", "client_key", "does not belong to the client"),
        (
            "client_expired",
            "client_expired",
            "client_cert",
            "Client certificate expired",
        ),
        ("client", None, "client_key", "Enter the client key of this certificate"),
        (
            "client",
            "garbage",
            "client_key",
            "Client key could not be read as a private",
        ),
        (None, "client", "client_cert", "Paste the client certificate"),
    ],
)
def test_bad_certificates_and_keys_are_refused_naming_the_field(
    demo, login, certs, cert_of, key_of, field, message
):
    body = {"host": "smtp.acme.example"}
    if cert_of:
        body["client_cert"] = pem(getattr(certs, cert_of))[0]
    elif message.startswith("Client certificate is not"):
        body["client_cert"] = "not a certificate"
    if key_of == "garbage":
        body["client_key"] = (
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"
        )
    elif key_of:
        body["client_key"] = pem(getattr(certs, key_of))[1]
    response = post_config(login(demo["acme_admin"]), **body)
    assert response.status_code == 400
    errors = response.json()["fields"]
    assert message in " ".join(errors[f"email_config.smtp_config.{field}"]), errors
    assert not SmtpConfiguration.objects.exists()  # nothing half-saved
    if key_of and key_of != "garbage":
        assert key_body(getattr(certs, key_of)) not in response.content.decode()


def test_a_blank_key_keeps_the_stored_one_until_the_host_changes(demo, login, certs):
    cert, key = pem(certs.client)
    client = login(demo["acme_admin"])
    assert (
        post_config(
            client, host="smtp.acme.example", client_cert=cert, client_key=key
        ).status_code
        == 201
    )
    # Saved again without certificate or key: both kept.
    assert post_config(client, host="smtp.acme.example", retries=5).status_code == 200
    stored = SmtpConfiguration.objects.get()
    assert (stored.client_cert, stored.client_key) == (cert.strip(), key.strip())
    # Another host: the key is asked for again, nothing changes.
    refused = post_config(client, host="smtp.other.example")
    assert refused.status_code == 400
    errors = refused.json()["fields"]
    assert (
        "Host changed from smtp.acme.example"
        in errors["email_config.smtp_config.client_key"][0]
    )
    stored.refresh_from_db()
    assert stored.host == "smtp.acme.example"
    # Given again, it is accepted; "" removes certificate and key.
    assert (
        post_config(client, host="smtp.other.example", client_key=key).status_code
        == 200
    )
    assert post_config(client, host="smtp.other.example", client_cert="").status_code
    stored.refresh_from_db()
    assert (stored.client_cert, stored.client_key) == ("", None)


def test_the_page_shows_subject_and_expiry_and_never_the_key(demo, login, certs):
    cert, key = pem(certs.client)
    client = login(demo["prod_admin"])
    url = "/console/infrastructure/system/settings/smtp/"
    form = {
        "action": "save",
        "host": "smtp.prod.example",
        "port": "587",
        "security": "starttls",
        "retries": "3",
        "client_cert": cert,
        "client_key": key,
    }
    # A failed save shows the form again: the key is not rendered back.
    failed = client.post(url, {**form, "port": "0"}).content.decode()
    assert "Port must be a whole number" in failed
    assert key_body(certs.client) not in failed
    client.post(url, form)
    page = client.get(url).content.decode()
    assert 'id="client-cert-set"' in page
    assert "CN=console.acme.example, expires" in page
    assert "(key stored)" in page
    assert key_body(certs.client) not in page
    # Remove: certificate and key gone, audited.
    client.post(url, {"action": "remove_client_cert"})
    stored = SmtpConfiguration.objects.get(organization=demo["acme-prod"])
    assert (stored.client_cert, stored.client_key) == ("", None)
    assert 'id="client-cert-not-set"' in client.get(url).content.decode()


def test_the_key_is_encrypted_in_the_database(demo, login, certs):
    from django.db import connection

    mtls_row(demo["acme"], 587, Security.STARTTLS, certs.client)
    with connection.cursor() as cursor:
        cursor.execute("SELECT client_cert, client_key FROM smtp_smtpconfiguration")
        cert_column, key_column = cursor.fetchone()
    assert "BEGIN CERTIFICATE" in cert_column  # the certificate is public
    raw_key = bytes(key_column).decode() if key_column else ""
    assert raw_key and "PRIVATE KEY" not in raw_key
    assert key_body(certs.client) not in raw_key


# -- on the wire ---------------------------------------------------------------------


@pytest.mark.parametrize("security", [Security.SSL, Security.STARTTLS])
def test_a_server_requiring_a_certificate_accepts_the_uploaded_one(
    demo, smtp_server, certs, trust_test_ca, security
):
    tls = {"implicit_tls" if security == Security.SSL else "starttls": certs.server}
    server = smtp_server(client_ca=certs.client_ca, **tls)
    row = mtls_row(demo["acme"], server.port, security, certs.client)
    outcome = verify(smtp_server_of_configuration(row))
    assert outcome.ok, [s.as_dict() for s in outcome.steps]
    assert server.connections == 1


@pytest.mark.parametrize("security", [Security.SSL, Security.STARTTLS])
def test_without_a_certificate_it_fails_at_tls_with_the_hint(
    demo, smtp_server, certs, trust_test_ca, security
):
    tls = {"implicit_tls" if security == Security.SSL else "starttls": certs.server}
    server = smtp_server(client_ca=certs.client_ca, **tls)
    outcome = verify(
        smtp_server_of_configuration(mtls_row(demo["acme"], server.port, security))
    )
    step = outcome.failed_step
    assert step is not None and step.name == "tls", [s.as_dict() for s in outcome.steps]
    # aiosmtpd sends no alert: it closes the connection after the handshake.
    assert "closed the connection before answering" in step.detail
    assert "The server requires a client certificate" in step.hint
    assert (step.hint_code, step.field) == (CLIENT_CERTIFICATE_REQUIRED, "client_cert")
    assert [s.name for s in outcome.steps][-1] == "tls"  # no greeting/EHLO step
    # A close is not proof: system emails retry it (an alert is not retried).
    assert outcome.transient


def test_a_certificate_from_a_ca_the_server_does_not_trust_is_named(
    demo, smtp_server, certs, trust_test_ca
):
    server = smtp_server(client_ca=certs.client_ca, implicit_tls=certs.server)
    row = mtls_row(demo["acme"], server.port, Security.SSL, certs.client_untrusted)
    step = verify(smtp_server_of_configuration(row)).failed_step
    assert step.name == "tls"
    assert step.hint_code == CLIENT_CERTIFICATE_REFUSED
    assert "did not accept the client certificate" in step.hint


def openssl_server(context: ssl.SSLContext):
    """An implicit-TLS server on OpenSSL's blocking sockets, which (unlike
    asyncio's) sends the TLS alert when the client's certificate is missing."""

    def script(connection):
        try:
            tls = context.wrap_socket(connection, server_side=True)
        except ssl.SSLError:
            return  # OpenSSL has sent its alert
        reader = tls.makefile("rb")
        tls.sendall(b"220 mtls.test ESMTP\r\n")
        for line in reader:
            verb = line[:4].upper()
            if verb == b"QUIT":
                tls.sendall(b"221 bye\r\n")
                return
            tls.sendall(b"250 OK\r\n")

    return script


def test_the_tls_alert_certificate_required_is_explained(
    demo, hostile, certs, trust_test_ca
):
    from tests.support.smtp_servers import server_context

    context = server_context(certs.server, certs.client_ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    server = hostile(openssl_server(context))
    refused = verify(
        smtp_server_of_configuration(mtls_row(demo["acme"], server.port, Security.SSL))
    )
    assert not refused.transient  # the alert says it: retrying will not help
    without = refused.failed_step
    assert without.name == "tls"
    assert "alert 'alert certificate required'" in without.detail
    assert without.hint == (
        "The server requires a client certificate: add the Client certificate and "
        "Client key it accepts (mutual TLS), issued by a CA the server trusts."
    )
    assert without.hint_code == CLIENT_CERTIFICATE_REQUIRED
    SmtpConfiguration.objects.all().delete()
    row = mtls_row(demo["acme"], server.port, Security.SSL, certs.client)
    outcome = verify(smtp_server_of_configuration(row))
    assert outcome.ok, [s.as_dict() for s in outcome.steps]


def test_verify_on_the_page_uses_the_certificate_in_the_form(
    worker, demo, smtp_server, certs, login
):
    # The worker does not trust the test CA for the server's certificate
    # (Insecure skips that check); the server still requires the client's.
    server = smtp_server(client_ca=certs.client_ca, implicit_tls=certs.self_signed)
    cert, key = pem(certs.client)
    client = login(demo["acme_admin"])
    form = {
        "host": "127.0.0.1",
        "port": str(server.port),
        "security": "ssl",
        "use_insecure": "on",
        "retries": "3",
        "recipient": "partner-admin@acme.example",
        "mode": "verify",
    }

    def run(**extra):
        response = client.post("/ops/smtp/test", {**form, **extra})
        assert response.status_code == 202, response.content
        return client.get(response.json()["status_url"], {"wait": "20"}).json()

    passed = run(client_cert=cert, client_key=key)
    assert passed["status"] == "sent", passed
    failed = run()
    assert (failed["status"], failed["failed_step"]) == ("failed", "tls")
    assert failed["hint_code"] == CLIENT_CERTIFICATE_REQUIRED
    assert failed["field"] == "client_cert"
    assert key_body(certs.client) not in json.dumps([passed, failed])


# -- the controller's environment ------------------------------------------------------


def test_the_controller_takes_a_certificate_file_and_a_pem_key(
    controller_smtp, smtp_server, certs, trust_test_ca
):
    server = smtp_server(client_ca=certs.client_ca, starttls=certs.server)
    controller_smtp(
        ADDR="localhost",
        PORT=str(server.port),
        CLIENT_CERT=str(certs.client.cert),
        CLIENT_KEY=certs.client.key.read_text(),
    )
    layer = controller_smtp_layer()
    assert layer.usable, layer.skipped_because
    assert layer.settings.security == Security.STARTTLS
    assert verify(layer.settings).ok
    assert key_body(certs.client) not in repr(layer)


def test_a_controller_key_that_does_not_match_is_named(controller_smtp, certs):
    controller_smtp(
        ADDR="mail.controller.example",
        CLIENT_CERT=str(certs.client.cert),
        CLIENT_KEY=str(certs.client_untrusted.key),
    )
    layer = controller_smtp_layer()
    assert layer.settings is None
    assert "FW_EVENT_SMTP_SERVER_CLIENT_KEY does not belong" in layer.skipped_because
    controller_smtp(CLIENT_KEY="/nonexistent/key.pem")
    assert "FW_EVENT_SMTP_SERVER_CLIENT_KEY must be PEM text or the path" in (
        controller_smtp_layer().skipped_because
    )


# -- expiry --------------------------------------------------------------------------


def expiry_events() -> list[str]:
    return list(
        AuditEvent.objects.filter(type__startswith="smtp_config.client_certificate.")
        .order_by("id")
        .values_list("type", flat=True)
    )


def test_the_health_check_warns_30_days_before_expiry_once_per_change(
    demo, smtp_server, certs, trust_test_ca, login
):
    server = smtp_server(client_ca=certs.client_ca, starttls=certs.server)
    row = mtls_row(demo["acme"], server.port, Security.STARTTLS, certs.client_expiring)
    for _ in range(3):
        assert smtp_config_health_check(configuration_id=row.pk) == "ok"
    assert expiry_events() == ["smtp_config.client_certificate.expiring"]
    event = AuditEvent.objects.get(type="smtp_config.client_certificate.expiring")
    assert event.detail["subject"] == "CN=expiring.acme.example"
    assert "expires on" in event.summary
    page = login(demo["acme_admin"]).get("/ops/smtp/").content.decode()
    assert 'data-notice="client_certificate_expiring"' in page
    assert "(in 9 days)" in page or "(in 10 days)" in page
    # Renewed: one event, and the notice is gone.
    cert, key = pem(certs.client)
    SmtpConfiguration.objects.filter(pk=row.pk).update(client_cert=cert)
    row.refresh_from_db()
    row.client_key = key
    row.save()
    for _ in range(2):
        assert smtp_config_health_check(configuration_id=row.pk) == "ok"
    assert expiry_events() == [
        "smtp_config.client_certificate.expiring",
        "smtp_config.client_certificate.renewed",
    ]
    page = login(demo["acme_admin"]).get("/ops/smtp/").content.decode()
    assert "client_certificate_expiring" not in page


def test_verify_of_unsaved_values_uses_the_stored_key_when_left_blank(
    worker, demo, smtp_server, certs, login
):
    server = smtp_server(client_ca=certs.client_ca, implicit_tls=certs.self_signed)
    cert, key = pem(certs.client)
    SmtpConfiguration.objects.create(
        partner=demo["acme"],
        host="127.0.0.1",
        port=server.port,
        security=Security.SSL,
        use_insecure=True,
        client_cert=cert,
        client_key=key,
    )
    client = login(demo["acme_admin"])
    form = {
        "host": "127.0.0.1",
        "port": str(server.port),
        "security": "ssl",
        "use_insecure": "on",
        "retries": "5",
        "recipient": "partner-admin@acme.example",
        "mode": "verify",
    }
    response = client.post("/ops/smtp/test", form)
    assert response.status_code == 202, response.content
    answer = client.get(response.json()["status_url"], {"wait": "20"}).json()
    assert answer["status"] == "sent", answer
    # Another port: the stored key is not sent there; the form says so.
    refused = client.post("/ops/smtp/test", {**form, "port": str(server.port + 1)})
    assert refused.status_code == 400
    assert "enter the client key again" in refused.json()["fields"]["client_key"][0]


@pytest.mark.parametrize("memfd", [True, False], ids=["memfd", "tempfile"])
def test_the_key_is_loaded_from_a_private_file_that_is_gone_at_once(
    monkeypatch, certs, memfd
):
    import os

    from smtp.delivery.certificates import load_client_certificate
    from smtp.delivery.server import ClientCertificate, Secret

    if not memfd:
        # Platforms without memfd_create take the temporary-file path; removing
        # the function here is the only way to run that path on Linux.
        monkeypatch.delattr(os, "memfd_create")
    seen: dict = {}
    real = ssl.SSLContext.load_cert_chain

    def watching(self, path, *args, **kwargs):
        seen["path"] = path
        seen["mode"] = os.stat(path).st_mode & 0o777
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", watching)
    cert, key = pem(certs.client)
    context = ssl.create_default_context()
    load_client_certificate(context, ClientCertificate(cert=cert, key=Secret(key)))
    if memfd:
        assert seen["path"].startswith("/proc/self/fd/")
    else:
        assert seen["mode"] == 0o600
        assert not os.path.exists(seen["path"])


def test_a_tls_1_2_server_refusing_the_handshake_mentions_the_certificate(
    demo, hostile, certs, trust_test_ca
):
    from tests.support.smtp_servers import server_context

    # TLS 1.2 servers decide during the handshake, with a generic alert.
    context = server_context(certs.server, certs.client_ca)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    server = hostile(openssl_server(context))
    step = verify(
        smtp_server_of_configuration(mtls_row(demo["acme"], server.port, Security.SSL))
    ).failed_step
    assert step.name == "tls"
    assert "handshake failure" in step.detail
    assert "Or the server requires a client certificate" in step.hint
