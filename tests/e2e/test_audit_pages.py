"""The Audit Logs pages and the support admin in a real browser: search, local
times, the Details control, and axe-core on every page."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.e2e.axe import axe_violations
from tests.e2e.conftest import api_call, login, screenshot, set_partner_smtp

GLOBEX = ("partner-admin@globex.example", "Globex-Partner-Pass-1")
ORG = ("org-admin@globex-main.example", "Globex-Main-Pass-1")
SUPPORT = ("support@ops.example", "Support-Pass-1")


def email_sent_to(browser, stack, recipient: str) -> None:
    """Precondition: a test email to ``recipient`` through the partner's sink
    (the documented verification API sends one)."""
    set_partner_smtp(
        browser,
        stack,
        *GLOBEX,
        {"host": "127.0.0.1", "port": stack.sink.port, "use_tls": False},
    )
    _status, body = api_call(
        browser,
        stack,
        *GLOBEX,
        "POST",
        "/event/v1/email/config/verification?wait=20",
        {"recipient_email": recipient, "subject": "Audit search journey"},
    )
    assert body["status"] == "sent", body


def test_search_finds_a_recipient_and_details_open_and_close(
    open_browser, browser, stack
):
    recipient = f"find-me-{uuid.uuid4().hex[:8]}@globex.example"
    email_sent_to(browser, stack, recipient)
    page = open_browser()
    login(page, *GLOBEX)
    page.get_by_role("link", name="Audit Logs").click()
    # when: part of the address, in another letter case
    page.get_by_label("Search").fill(recipient.split("@")[0].upper())
    page.get_by_role("button", name="Apply").click()
    # then: exactly its two events
    rows = page.locator("tbody.event")
    expect(rows).to_have_count(2)
    expect(page.locator("#result-count")).to_have_text("2 events match.")
    expect(rows.first).to_contain_text("email.sent")
    expect(rows.last).to_contain_text("email.queued")
    expect(page.get_by_label("Search")).to_have_value(recipient.split("@")[0].upper())

    # the Details control says whether it is open, and opens with the keyboard
    toggle = rows.first.get_by_role("button", name="Details")
    detail = rows.first.locator(".event-detail-row")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(detail).to_be_hidden()
    toggle.focus()
    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(detail).to_be_visible()
    expect(detail.locator(".steps-table")).to_contain_text("RCPT TO (recipient)")
    expect(detail.locator(".steps-table")).to_contain_text("DATA (message)")
    screenshot(page, "ops-audit-search")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(detail).to_be_hidden()


def test_times_are_shown_in_the_viewers_zone_with_the_utc_on_hover(
    open_browser, browser, stack
):
    email_sent_to(browser, stack, "local-time@globex.example")
    page = open_browser(timezone_id="America/New_York", locale="en-US")
    login(page, *GLOBEX)
    page.goto("/ops/audit-logs/?q=local-time%40globex")
    stamp = page.locator("tbody.event time").first
    # then: the time of New York in November (EST, UTC-5), named, and how long ago
    expect(stamp).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d EST$"))
    utc = stamp.get_attribute("datetime")
    shown = stamp.inner_text()
    local_hour = int(shown[11:13])
    assert (int(utc[11:13]) - local_hour) % 24 == 5, (utc, shown)
    assert stamp.get_attribute("title").endswith(" UTC")
    assert stamp.get_attribute("title").startswith(utc[:19].replace("T", " "))
    expect(page.locator("tbody.event .relative-time").first).to_have_text(
        re.compile(r"^(just now|\d+ min ago)$")
    )
    expect(page.locator("#events > thead")).to_contain_text("America/New_York")
    # the custom range says which zone it is read in
    page.get_by_label("Time range").select_option("custom")
    expect(page.locator("label[for=id_from]")).to_have_text("From (America/New_York)")
    expect(page.locator("label[for=id_to]")).to_have_text("To (America/New_York)")


@pytest.fixture(scope="module")
def some_events(browser, stack):
    email_sent_to(browser, stack, "axe-check@globex.example")


@pytest.mark.parametrize(("width", "height"), [(1440, 900), (390, 844)])
@pytest.mark.parametrize(
    ("who", "path"),
    [
        (GLOBEX, "/ops/audit-logs/?range=7d"),
        (GLOBEX, "/ops/audit-logs/?range=custom"),
        (ORG, "/console/audit-logs/?range=7d"),
        (GLOBEX, "/ops/organizations/new/"),
    ],
)
def test_axe_finds_nothing_serious_on_the_audit_pages(
    open_browser, some_events, who, path, width, height
):
    page = open_browser(width, height)
    login(page, *who)
    page.goto(path)
    toggles = page.locator("[data-event-toggle]")
    if toggles.count():
        toggles.first.click()  # an open detail too: steps table and JSON
    assert axe_violations(page) == []
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{path} is {overflow}px wider than a {width}px screen"


@pytest.mark.parametrize(
    "path",
    [
        "/admin/",
        "/admin/smtp/smtpconfiguration/",
        "/admin/smtp/email/",
        "/admin/audit/auditevent/",
        "/admin/tenants/organization/",
        "/admin/tenants/user/",
    ],
)
def test_axe_finds_nothing_serious_in_the_support_admin(open_browser, path):
    page = open_browser(1440, 900)
    login(page, *SUPPORT)
    page.goto(path)
    expect(page.locator("#site-name")).to_have_text("Ops Console support")
    assert axe_violations(page, impacts=("moderate", "serious", "critical")) == []


def test_the_support_admin_login_page_has_a_heading(open_browser):
    page = open_browser(1440, 900)
    page.goto("/admin/login/")
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Log in to Ops Console support"
    )
    assert axe_violations(page, impacts=("moderate", "serious", "critical")) == []
