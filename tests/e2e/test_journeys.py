"""The users' journeys in a real browser, against the real stack."""

from __future__ import annotations

import csv
import io
import re
from urllib.parse import urlsplit

from playwright.sync_api import expect

from tests.e2e.conftest import (
    CANARY,
    SMTP_USER,
    api_call,
    expect_console_error,
    login,
    screenshot,
    set_partner_smtp,
    set_security,
    wait_for_message,
)

ACME = ("partner-admin@acme.example", "Acme-Partner-Pass-1")
GLOBEX = ("partner-admin@globex.example", "Globex-Partner-Pass-1")
PLAIN = {"host": "127.0.0.1", "use_tls": False, "retries": 3}

# Records every text the test status line shows, to see the progress live.
STATUS_LOG = """
window.__statusLog = [];
new MutationObserver(() => {
  const line = document.getElementById("test-status");
  if (line && line.textContent) { window.__statusLog.push(line.textContent); }
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def fill_smtp_form(page, *, host: str, port: int, tls: bool, username="", password=""):
    page.get_by_label("Host").fill(host)
    page.get_by_role("spinbutton", name="Port").fill(str(port))
    set_security(page, "starttls" if tls else "none")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)


def test_partner_admin_tests_and_saves_the_smtp_configuration(open_browser, stack):
    page = open_browser()
    page.add_init_script(STATUS_LOG)
    login(page, *ACME)
    # given: the partner admin is in the Ops Console, SMTP page
    page.get_by_role("link", name="SMTP", exact=True).click()
    expect(page.get_by_role("heading", name="SMTP", exact=True)).to_be_visible()
    received_before = len(stack.auth_server.messages)
    # when: they fill the form and press Send Test Email (before saving)
    fill_smtp_form(
        page,
        host="localhost",
        port=stack.auth_server.port,
        tls=True,
        username=SMTP_USER,
        password=CANARY,
    )
    page.get_by_role("button", name="Send Test Email").click()
    # then: the steps progress to "sent", and the message arrives
    status = page.locator("#test-status")
    expect(status).to_contain_text("Sent:", timeout=20_000)
    log = page.evaluate("window.__statusLog")
    assert any(text.startswith(("Queued", "Running")) for text in log), log
    for step in ("resolve", "connect", "tls", "auth", "data"):
        expect(
            page.locator(f"#test-steps li[data-step='{step}'].step-ok").first
        ).to_be_visible()
    message = wait_for_message(stack.auth_server, ACME[0])
    # "the Ops Console", or the partner's product name if a journey branded it
    assert message.message["Subject"].startswith("Test email from the ")
    assert len(stack.auth_server.messages) == received_before + 1
    screenshot(page, "ops-smtp-test-sent")
    # when: they save
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("SMTP configuration saved.")).to_be_visible()
    # then: after a reload the fields are kept, the password field is empty
    page.reload()
    expect(page.get_by_label("Host")).to_have_value("localhost")
    expect(page.get_by_role("spinbutton", name="Port")).to_have_value(
        str(stack.auth_server.port)
    )
    expect(page.get_by_label("Username")).to_have_value(SMTP_USER)
    expect(page.get_by_label("Password")).to_have_value("")
    expect(page.locator("#password-set")).to_have_text("password set")
    expect(page.locator("[data-effective-source]")).to_have_text("Partner")


def test_a_wrong_password_fails_at_auth_and_highlights_the_password(
    open_browser, stack
):
    page = open_browser()
    login(page, *ACME)
    page.goto("/ops/smtp/")
    fill_smtp_form(
        page,
        host="localhost",
        port=stack.auth_server.port,
        tls=True,
        username=SMTP_USER,
        password="Wrong-" + CANARY,
    )
    page.get_by_role("button", name="Send Test Email").click()
    status = page.locator("#test-status")
    expect(status).to_contain_text("Failed at Authenticate", timeout=20_000)
    expect(status).to_contain_text("auth failed (535)")
    failed = page.locator("#test-steps li[data-step='auth'].step-failed")
    expect(failed).to_contain_text("535")
    expect(failed).to_contain_text("refused the username or password")
    password_field = page.locator("#field-password")
    expect(password_field).to_have_class(re.compile(r"\bhas-error\b"))
    expect(password_field).to_contain_text("The test failed here")
    screenshot(page, "ops-smtp-test-auth-failed")


def test_org_admin_inherits_the_partner_then_saves_its_own(
    open_browser, browser, stack
):
    set_partner_smtp(browser, stack, *GLOBEX, {**PLAIN, "port": stack.sink.port})
    page = open_browser()
    login(page, "org-admin@globex-main.example", "Globex-Main-Pass-1")
    # Infrastructure -> System -> Settings -> SMTP Configuration
    nav = page.get_by_role("navigation", name="Web Console")
    expect(nav).to_contain_text("Infrastructure")
    expect(nav).to_contain_text("System")
    nav.get_by_role("link", name="Settings").click()
    page.get_by_role("link", name="SMTP Configuration").click()
    expect(page.get_by_role("heading", name="SMTP Configuration")).to_be_visible()
    expect(page.locator("#inherit-notice")).to_contain_text(
        "inherits the partner's settings"
    )
    expect(page.locator("[data-effective-source]")).to_have_text("Partner")
    # with Host empty, Send Test Email tests the partner's configuration in effect
    expect(page.get_by_label("Host")).to_have_value("")
    page.get_by_label("Recipient").fill("org-admin@globex-main.example")
    page.get_by_role("button", name="Send Test Email").click()
    status = page.locator("#test-status")
    expect(status).to_contain_text(
        "Sent (the partner configuration in effect)", timeout=20_000
    )
    fill_smtp_form(page, host="127.0.0.1", port=stack.sink.port, tls=False)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("SMTP configuration saved.")).to_be_visible()
    expect(page.locator("[data-effective-source]")).to_have_text("Organization")
    expect(page.locator("#inherit-notice")).to_have_count(0)
    screenshot(page, "web-smtp-settings")


def test_the_feature_flag_hides_the_entry_until_support_enables_it(open_browser, stack):
    org_admin = open_browser()
    login(org_admin, "org-admin@acme-dev.example", "Acme-Dev-Pass-1")
    org_admin.goto("/console/infrastructure/system/settings/")
    expect(org_admin.get_by_role("heading", name="Settings")).to_be_visible()
    expect(org_admin.get_by_role("link", name="SMTP Configuration")).to_have_count(0)
    expect_console_error(org_admin, "404 (Not Found)")
    response = org_admin.goto("/console/infrastructure/system/settings/smtp/")
    assert response.status == 404
    expect(org_admin.get_by_role("heading", name="Page not found")).to_be_visible()
    # Support switches the feature on in /admin/.
    support = open_browser()
    support.goto("/admin/")
    support.get_by_label("Email").fill("support@ops.example")
    support.get_by_label("Password").fill("Support-Pass-1")
    support.get_by_role("button", name="Log in").click()
    support.get_by_role("link", name="Organizations").click()
    support.get_by_role("link", name="Acme Development").click()
    support.get_by_label("SMTP configuration feature").check()
    support.get_by_role("button", name="Save", exact=True).click()
    expect(support.locator(".messagelist")).to_contain_text("was changed successfully")
    # The org admin reloads: the entry is there, and the page opens.
    org_admin.goto("/console/infrastructure/system/settings/")
    org_admin.get_by_role("link", name="SMTP Configuration").click()
    expect(org_admin.get_by_role("heading", name="SMTP Configuration")).to_be_visible()


def test_audit_logs_show_the_email_events_with_steps_and_export(
    open_browser, browser, stack
):
    set_partner_smtp(browser, stack, *ACME, {**PLAIN, "port": stack.sink.port})
    _status, body = api_call(
        browser,
        stack,
        *ACME,
        "POST",
        "/event/v1/email/config/verification?wait=20",
        {"recipient_email": "audit-check@acme.example", "subject": "Audit journey"},
    )
    assert body["status"] == "sent", body
    page = open_browser()
    login(page, *ACME)
    page.get_by_role("link", name="Audit Logs").click()
    page.get_by_label("Time range").select_option("1h")
    page.get_by_label("Category").select_option("SYSTEMAUDIT")
    page.get_by_role("button", name="Apply").click()
    events = page.locator("#events")
    expect(events).to_contain_text("email.sent")
    expect(events).to_contain_text("email.queued")
    sent = page.locator("tbody.event", has_text="audit-check@acme.example").filter(
        has_text="email.sent"
    )
    sent.get_by_role("button", name="Details").click()
    steps = sent.locator(".steps-table")
    expect(steps).to_contain_text("DATA (message)")
    expect(steps).to_contain_text("250")
    screenshot(page, "ops-audit-log")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV").click()
    download = download_info.value
    with open(download.path()) as exported:
        rows = list(csv.DictReader(io.StringIO(exported.read())))
    assert any(
        r["type"] == "email.sent" and "audit-check@acme.example" in r["summary"]
        for r in rows
    )
    assert {r["category"] for r in rows} == {"SYSTEMAUDIT"}


def test_verify_account_creation_by_email_link(open_browser, browser, stack):
    set_partner_smtp(browser, stack, *ACME, {**PLAIN, "port": stack.sink.port})
    page = open_browser()
    login(page, *ACME)
    page.get_by_role("link", name="Organizations").click()
    page.get_by_role("link", name="New organization").click()
    expect(page.locator("#account-creation")).to_contain_text(
        "one-time link to set their own password"
    )
    expect(page.get_by_text("ACCOUNT_CREATION_STRATEGY")).to_have_count(0)
    expect(page.get_by_label("Admin password")).to_have_count(0)
    page.get_by_label("Name").fill("Acme QA")
    page.get_by_label("Admin email").fill("admin@acme-qa.example")
    page.get_by_role("button", name="Create organization").click()
    expect(page.get_by_text("was sent an email to set their password")).to_be_visible()
    invitation = wait_for_message(stack.sink, "admin@acme-qa.example")
    assert invitation.message["Subject"] == "Set your password for Acme QA"
    link = re.search(
        r"https?://\S+/account/setup/\S+/",
        invitation.message.get_body(preferencelist=("plain",)).get_content(),
    )
    assert link, invitation.message.as_string()
    path = urlsplit(link.group(0)).path
    newcomer = open_browser()
    newcomer.goto(path)
    expect(newcomer.get_by_role("heading", name="Set your password")).to_be_visible()
    newcomer.get_by_label("New password").fill("Acme-QA-Admin-Pass-1")
    newcomer.get_by_label("Repeat the password").fill("Acme-QA-Admin-Pass-1")
    newcomer.get_by_role("button", name="Set password").click()
    expect(
        newcomer.get_by_text("Password set. Log in with your new password.")
    ).to_be_visible()
    login(newcomer, "admin@acme-qa.example", "Acme-QA-Admin-Pass-1")
    expect(newcomer).to_have_url(re.compile(r"/console/"))
    expect(newcomer.get_by_role("navigation", name="Web Console")).to_be_visible()
    newcomer.goto(path)
    expect(
        newcomer.get_by_role("heading", name="This link no longer works")
    ).to_be_visible()
