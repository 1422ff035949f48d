"""A partner admin proves a relay that requires a client certificate, in a real
browser: Verify names the missing certificate, then passes with it."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.e2e.conftest import login, set_security

ACME = ("partner-admin@acme.example", "Acme-Partner-Pass-1")


def test_verify_asks_for_the_client_certificate_then_passes_with_it(
    open_browser, stack
):
    page = open_browser()
    login(page, *ACME)
    page.goto("/ops/smtp/")
    # given: the form points at a relay that requires a client certificate
    page.get_by_label("Host").fill("localhost")
    page.get_by_role("spinbutton", name="Port").fill(str(stack.mtls_server.port))
    set_security(page, "starttls")
    page.get_by_label("Username").fill("")
    page.get_by_label("Password").fill("")
    # when: Verify without one
    page.get_by_role("button", name="Verify (no mail sent)").click()
    # then: it fails at TLS, and Advanced opens on the Client certificate field
    status = page.locator("#test-status")
    expect(status).to_contain_text("Failed at TLS", timeout=20_000)
    expect(status).to_contain_text("The server requires a client certificate")
    field = page.locator("#field-client_cert")
    expect(field).to_be_visible()
    expect(field).to_have_class(re.compile(r"\bhas-error\b"))
    # when: the certificate and key are pasted and Verify runs again
    page.get_by_label("Client certificate").fill(stack.certs.client.cert.read_text())
    page.get_by_label("Client key").fill(stack.certs.client.key.read_text())
    page.get_by_role("button", name="Verify (no mail sent)").click()
    # then: every step up to RCPT TO works
    expect(status).to_contain_text("Verified:", timeout=20_000)
    expect(page.locator("#test-steps li[data-step='tls']")).to_contain_text("STARTTLS")
