"""UI quality in a real browser: keyboard, focus, labels, errors, hints, layout."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import (
    SECURITY_LABELS,
    api_call,
    login,
    screenshot,
    set_partner_smtp,
    set_security,
)
from tests.support.smtp_servers import SilentListener, free_port

GLOBEX = ("partner-admin@globex.example", "Globex-Partner-Pass-1")
ORG = ("org-admin@globex-main.example", "Globex-Main-Pass-1")


def tab_to(page, selector: str, limit: int = 60) -> None:
    """Press Tab until the element matching ``selector`` has the focus."""
    for _ in range(limit):
        if page.evaluate(f"document.activeElement.matches({selector!r})"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


def test_the_smtp_form_works_with_the_keyboard_alone(open_browser, browser, stack):
    # given: a partner without a configuration (a new form: STARTTLS)
    api_call(browser, stack, *GLOBEX, "DELETE", "/event/v1/email/config")
    page = open_browser()
    login(page, *GLOBEX)
    page.goto("/ops/smtp/")
    tab_to(page, "#id_host")
    page.keyboard.press("Control+A")
    page.keyboard.type("127.0.0.1")
    page.keyboard.press("Tab")
    page.keyboard.press("Control+A")
    page.keyboard.type(str(stack.sink.port))
    page.keyboard.press("Tab")  # the Security choice: its checked radio button
    assert page.evaluate("document.activeElement.name") == "security"
    assert page.evaluate("document.activeElement.value") == "starttls"
    page.keyboard.press("ArrowUp")  # None: a plain sink
    expect(page.get_by_label(SECURITY_LABELS["none"], exact=True)).to_be_checked()
    tab_to(page, "button[value=save]")
    page.keyboard.press("Enter")
    expect(page.get_by_text("SMTP configuration saved.")).to_be_visible()
    expect(page.get_by_label("Host")).to_have_value("127.0.0.1")


def test_focus_is_visible(open_browser):
    page = open_browser()
    page.goto("/login/")
    tab_to(page, "#id_username")
    outline = page.evaluate(
        "getComputedStyle(document.activeElement).outlineStyle + ' ' + "
        "getComputedStyle(document.activeElement).outlineWidth"
    )
    assert outline.split()[0] != "none" and outline.split()[1] != "0px", outline


@pytest.mark.parametrize(
    ("who", "path"),
    [
        (GLOBEX, "/ops/smtp/"),
        (GLOBEX, "/ops/organizations/new/"),
        (GLOBEX, "/ops/audit-logs/"),
        (GLOBEX, "/ops/email-identity/"),
        (ORG, "/console/infrastructure/system/settings/smtp/"),
    ],
)
def test_every_field_has_a_label(open_browser, who, path):
    page = open_browser()
    login(page, *who)
    page.goto(path)
    unlabeled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
            .filter(el => !['hidden', 'submit', 'button'].includes(el.type))
            .filter(el => !(el.labels && el.labels.length))
            .filter(el => !el.getAttribute('aria-label'))
            .map(el => el.name || el.id)"""
    )
    assert unlabeled == []


def test_errors_stand_next_to_fields_and_in_a_focused_summary(open_browser):
    page = open_browser()
    login(page, *GLOBEX)
    page.goto("/ops/smtp/")
    page.get_by_label("Host").fill("smtp://mail.example.com")
    page.get_by_role("spinbutton", name="Port").fill("70000")
    page.get_by_role("button", name="Save", exact=True).click()
    summary = page.locator("#error-summary")
    expect(summary).to_be_visible()
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("nothing was changed")
    expect(page.locator("#field-host .field-error")).to_contain_text("remove 'smtp://'")
    expect(page.locator("#field-port .field-error")).to_contain_text("1 to 65535")
    summary.get_by_role("link", name="Port:").click()
    expect(page.get_by_role("spinbutton", name="Port")).to_be_focused()
    screenshot(page, "ops-smtp-errors")


def test_security_follows_the_port_until_the_admin_picks_one(
    open_browser, browser, stack
):
    # given: a partner without a configuration (a new form: STARTTLS)
    api_call(browser, stack, *GLOBEX, "DELETE", "/event/v1/email/config")
    page = open_browser()
    login(page, *GLOBEX)
    page.goto("/ops/smtp/")
    hint = page.locator("#tls-hint")
    port = page.get_by_role("spinbutton", name="Port")
    starttls = page.get_by_label(SECURITY_LABELS["starttls"], exact=True)
    implicit = page.get_by_label(SECURITY_LABELS["ssl"], exact=True)
    insecure = page.get_by_label("Skip certificate verification (insecure)")
    # one choice, in one place: no TLS box, no TLS mode
    expect(page.get_by_label("TLS", exact=True)).to_have_count(0)
    expect(page.get_by_label("TLS mode")).to_have_count(0)
    port.fill("587")
    expect(starttls).to_be_checked()
    expect(hint).to_contain_text("STARTTLS on port 587")
    # the port chooses while the admin has not
    port.fill("465")
    expect(implicit).to_be_checked()
    expect(hint).to_contain_text("Implicit TLS (SMTPS)")
    port.fill("587")
    expect(starttls).to_be_checked()
    # certificate verification can be skipped only with TLS
    expect(insecure).to_be_visible()
    set_security(page, "none")
    expect(hint).to_contain_text("No encryption")
    expect(insecure).to_be_hidden()
    expect(page.locator("#id_port_hint")).to_contain_text("25 for plain SMTP")
    # once picked, the port no longer changes it
    port.fill("465")
    expect(page.get_by_label(SECURITY_LABELS["none"], exact=True)).to_be_checked()
    expect(hint).to_contain_text("Port 465 expects implicit TLS")
    set_security(page, "starttls")
    port.fill("465")
    expect(starttls).to_be_checked()
    expect(insecure).to_be_visible()
    expect(page.locator("#id_port_hint")).to_contain_text(
        "587 for STARTTLS, 465 for implicit TLS"
    )


def test_delete_asks_first(open_browser, browser, stack):
    set_partner_smtp(
        browser,
        stack,
        *GLOBEX,
        {"host": "127.0.0.1", "port": 2525, "use_tls": False, "retries": 3},
    )
    page = open_browser()
    login(page, *GLOBEX)
    page.goto("/ops/smtp/")
    delete = page.get_by_role("button", name="Delete (revert to controller default)")
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    delete.click()
    expect(page.locator("[data-effective-source]")).to_have_text("Partner")
    assert asked and "Delete this configuration?" in asked[0]
    page.once("dialog", lambda dialog: dialog.accept())
    delete.click()
    expect(page.get_by_text("the controller default applies again")).to_be_visible()
    status, _ = api_call(browser, stack, *GLOBEX, "GET", "/event/v1/email/config")
    assert status == 404


@pytest.mark.parametrize(("width", "height"), [(1280, 800), (390, 844)])
@pytest.mark.parametrize(
    ("who", "path"),
    [
        (None, "/login/"),
        (GLOBEX, "/ops/smtp/"),
        (GLOBEX, "/ops/organizations/"),
        (GLOBEX, "/ops/audit-logs/?range=7d"),
        (GLOBEX, "/ops/email-identity/"),
        (GLOBEX, "/ops/email-identity/preview/password_reset/"),
        (ORG, "/console/infrastructure/system/settings/"),
        (ORG, "/console/infrastructure/system/settings/smtp/"),
        (ORG, "/console/audit-logs/?range=7d"),
    ],
)
def test_no_layout_break(open_browser, who, path, width, height):
    page = open_browser(width, height)
    if who is not None:
        login(page, *who)
    page.goto(path)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{path} is {overflow}px wider than a {width}px screen"


def test_the_api_docs_render_under_the_content_security_policy(open_browser):
    page = open_browser()
    login(page, *GLOBEX)
    page.goto("/api/docs/")
    expect(page.get_by_text("Ops Console SMTP API")).to_be_visible()
    expect(page.get_by_text("/event/v1/email/config").first).to_be_visible()


def test_focus_waits_on_the_result_during_a_test_and_returns_to_its_button(
    open_browser,
):
    # given: a server that accepts the connection and never greets (the e2e
    # stack waits SMTP_TIMEOUT, 5 s, for it)
    silent = SilentListener()
    try:
        page = open_browser()
        login(page, *GLOBEX)
        page.goto("/ops/smtp/")
        page.get_by_label("Host").fill("127.0.0.1")
        page.get_by_role("spinbutton", name="Port").fill(str(silent.port))
        set_security(page, "none")
        verify = page.get_by_role("button", name="Verify (no mail sent)")
        # when: the admin starts Verify from the keyboard
        verify.focus()
        page.keyboard.press("Enter")
        # then: focus moves to the live result, not to <body>, and a slow step
        # shows its elapsed time
        status = page.locator("#test-status")
        expect(status).to_be_focused()
        expect(status).to_have_attribute("role", "status")
        expect(status).to_contain_text(re.compile(r"\(\d+ s\)"), timeout=20_000)
        # and: once the result is in, focus is back on the button
        expect(status).to_contain_text("Failed at", timeout=60_000)
        expect(verify).to_be_focused()
    finally:
        silent.stop()


def test_a_stored_password_that_must_be_entered_again_says_so_once(
    open_browser, browser, stack
):
    # given: a saved configuration with a password
    set_partner_smtp(
        browser,
        stack,
        *GLOBEX,
        {
            "host": "127.0.0.1",
            "port": 2525,
            "use_tls": True,
            "username": "u",
            "password": "Stored-Pass-1",
        },
    )
    page = open_browser()
    login(page, *GLOBEX)
    try:
        _password_state_after_a_port_change(page)
    finally:
        api_call(browser, stack, *GLOBEX, "DELETE", "/event/v1/email/config")


def _password_state_after_a_port_change(page) -> None:
    page.goto("/ops/smtp/")
    password = page.get_by_label("Password")
    expect(page.locator("#password-set")).to_be_visible()
    # when: the port changes and the password is left empty
    page.get_by_role("spinbutton", name="Port").fill("2526")
    page.get_by_role("button", name="Save", exact=True).click()
    # then: one message says what happened: no "leave empty to keep"
    help_text = page.locator("#id_password_helptext")
    expect(page.locator("#password-needed")).to_be_visible()
    expect(help_text).not_to_contain_text("Leave empty to keep")
    expect(page.locator("#field-password .field-error")).to_contain_text(
        "enter the password again"
    )
    # and: the input is marked invalid and described by the state and the error
    expect(password).to_have_attribute("aria-invalid", "true")
    described = (password.get_attribute("aria-describedby") or "").split()
    assert {"id_password_helptext", "id_password_error"} <= set(described)
    # and: required fields are announced, hints are linked to their inputs
    expect(page.get_by_label("Host")).to_have_attribute("aria-required", "true")
    port_described = page.get_by_role("spinbutton", name="Port").get_attribute(
        "aria-describedby"
    )
    assert "id_port_hint" in port_described.split()


def test_limits_and_failover_are_set_in_advanced_and_shown_in_effect(
    open_browser, browser, stack
):
    # given: an organization admin whose partner has a configuration (a level
    # below to fail over to)
    set_partner_smtp(
        browser,
        stack,
        *GLOBEX,
        {"host": "127.0.0.1", "port": stack.sink.port, "use_tls": False},
    )
    page = open_browser()
    login(page, *ORG)
    page.goto("/console/infrastructure/system/settings/smtp/")
    page.get_by_label("Host").fill("127.0.0.1")
    page.get_by_role("spinbutton", name="Port").fill(str(stack.sink.port))
    set_security(page, "none")
    page.get_by_text("Advanced: retries, sender, client certificate").click()
    per_minute = page.get_by_role("spinbutton", name="Messages per minute")
    # when: a bad value is saved, the field says what is wrong
    per_minute.fill("-5")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#field-messages_per_minute .field-error")).to_be_visible()
    # when: they set 30 a minute, 2 connections and failover to the partner
    page.get_by_role("spinbutton", name="Messages per minute").fill("30")
    page.get_by_role("spinbutton", name="Max concurrent connections").fill("2")
    page.get_by_label(re.compile("Fail over to the partner configuration")).check()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("SMTP configuration saved.")).to_be_visible()
    # then: the values stay (under Advanced), and the API shows them
    page.get_by_text("Advanced: retries, sender, client certificate").click()
    expect(page.get_by_role("spinbutton", name="Messages per minute")).to_have_value(
        "30"
    )
    expect(
        page.get_by_label(re.compile("Fail over to the partner configuration"))
    ).to_be_checked()
    status, body = api_call(browser, stack, *ORG, "GET", "/event/v1/email/config")
    assert status == 200, body
    smtp = body["email_config"]["smtp_config"]
    assert (smtp["messages_per_minute"], smtp["max_connections"], smtp["failover"]) == (
        30,
        2,
        True,
    )
    api_call(browser, stack, *ORG, "DELETE", "/event/v1/email/config")


def test_save_and_test_saves_only_what_passes(open_browser, browser, stack):
    api_call(browser, stack, *GLOBEX, "DELETE", "/event/v1/email/config")
    page = open_browser()
    login(page, *GLOBEX)
    page.goto("/ops/smtp/")
    page.get_by_label("Host").fill("127.0.0.1")
    page.get_by_role("spinbutton", name="Port").fill(str(stack.sink.port))
    set_security(page, "none")
    # when: Save & test with a server that works
    page.get_by_role("button", name="Save & test").click()
    # then: the live steps end in a pass, and the configuration is saved, tested
    expect(page.get_by_text("SMTP configuration saved and tested")).to_be_visible(
        timeout=20_000
    )
    expect(page.locator("#config-tested")).to_be_visible()
    # when: the port changes to one where nothing listens
    page.get_by_role("spinbutton", name="Port").fill(str(free_port()))
    page.get_by_role("button", name="Save & test").click()
    # then: the failure is shown, nothing is saved, and Save offers to save anyway
    status = page.locator("#test-status")
    expect(status).to_contain_text("Failed at Connect", timeout=20_000)
    expect(status).to_contain_text("Not saved")
    save_anyway = page.get_by_role("button", name="Save anyway")
    expect(save_anyway).to_be_visible()
    _, body = api_call(browser, stack, *GLOBEX, "GET", "/event/v1/email/config")
    assert body["email_config"]["smtp_config"]["port"] == stack.sink.port
    # when: they save anyway, it is saved and marked untested
    save_anyway.click()
    expect(page.get_by_text("SMTP configuration saved.")).to_be_visible()
    expect(page.locator("#config-untested")).to_be_visible()
    api_call(browser, stack, *GLOBEX, "DELETE", "/event/v1/email/config")
