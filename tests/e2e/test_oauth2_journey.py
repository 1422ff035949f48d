"""Configuring Microsoft 365 with OAuth2 in a real browser: the provider preset,
only the fields that apply, Verify showing the token step live, Save."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.conftest import CANARY, SECURITY_LABELS, login, screenshot
from tests.e2e.test_journeys import ACME, STATUS_LOG

MAILBOX = "alerts@acme.example"
TENANT = "contoso.onmicrosoft.com"
CLIENT_ID = "5f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def test_partner_admin_configures_microsoft_oauth2_and_verifies(open_browser, stack):
    # given: the token endpoint knows the app (its secret is the canary, which
    # must never come back from the server)
    stack.token_server.clients[CLIENT_ID] = CANARY
    requests_before = stack.token_server.count
    page = open_browser()
    page.add_init_script(STATUS_LOG)
    login(page, *ACME)
    page.get_by_role("link", name="SMTP", exact=True).click()

    # when: they choose OAuth2, then Microsoft
    page.get_by_label("Authentication").select_option("oauth2")
    expect(page.locator("#field-password")).to_be_hidden()
    expect(page.get_by_label("Provider")).to_be_visible()
    page.get_by_label("Provider").select_option("microsoft")

    # then: the preset fills Host, Port and TLS, and Microsoft's fields show
    expect(page.get_by_label("Host")).to_have_value("smtp.office365.com")
    expect(page.get_by_role("spinbutton", name="Port")).to_have_value("587")
    expect(page.get_by_label(SECURITY_LABELS["starttls"], exact=True)).to_be_checked()
    expect(page.get_by_label("Tenant ID")).to_be_visible()
    expect(page.get_by_label("Service account key")).to_be_hidden()
    expect(page.get_by_label("Token URL")).to_be_hidden()

    # when: they point it at the test server, fill the app, and Verify
    page.get_by_label("Host").fill("localhost")
    page.get_by_role("spinbutton", name="Port").fill(str(stack.xoauth2_server.port))
    page.get_by_label("Username").fill(MAILBOX)
    page.get_by_label("Tenant ID").fill(TENANT)
    page.get_by_label("Client ID").fill(CLIENT_ID)
    page.get_by_label("Client secret", exact=True).fill(CANARY)
    page.get_by_role("button", name="Verify (no mail sent)").click()

    # then: the token step, then AUTH, succeed live; nothing is sent
    status = page.locator("#test-status")
    expect(status).to_contain_text("Verified:", timeout=20_000)
    log = page.evaluate("window.__statusLog")
    assert any(text.startswith(("Queued", "Running")) for text in log), log
    steps = page.locator("#test-steps li")
    expect(steps.first).to_have_attribute("data-step", "token")
    token_step = page.locator("#test-steps li[data-step='token'].step-ok")
    expect(token_step).to_contain_text("OAuth2 token")
    expect(token_step).to_contain_text("Microsoft Entra ID")
    expect(
        page.locator("#test-steps li[data-step='auth'].step-ok").first
    ).to_contain_text("XOAUTH2")
    assert stack.token_server.count == requests_before + 1
    assert MAILBOX in stack.xoauth2_server.handler.xoauth2_users
    screenshot(page, "ops-smtp-oauth2-verified")

    # when: they save
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("SMTP configuration saved.")).to_be_visible()

    # then: OAuth2 is kept, the secret is stored and its field is empty
    expect(page.get_by_label("Authentication")).to_have_value("oauth2")
    expect(page.get_by_label("Provider")).to_have_value("microsoft")
    expect(page.get_by_label("Tenant ID")).to_have_value(TENANT)
    expect(page.locator("#client-secret-set")).to_be_visible()
    expect(page.get_by_label("Client secret", exact=True)).to_have_value("")
    screenshot(page, "ops-smtp-oauth2-saved")
