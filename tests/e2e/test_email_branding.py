"""A partner brands its emails in a real browser: branding and a subject override,
the preview, and the preview sent to itself through its SMTP server."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default

from playwright.sync_api import expect

from tests.e2e.conftest import login, screenshot, set_partner_smtp, wait_for_message
from tests.smtp.test_branded_emails import png

ACME = ("partner-admin@acme.example", "Acme-Partner-Pass-1")
PLAIN = {"host": "127.0.0.1", "use_tls": False, "retries": 3}


def test_a_partner_brands_previews_and_sends_the_preview_to_itself(
    open_browser, browser, stack
):
    set_partner_smtp(browser, stack, *ACME, {**PLAIN, "port": stack.sink.port})
    page = open_browser(1280, 900)
    login(page, *ACME)
    # given: the partner admin on the Emails page of the Ops Console
    page.get_by_role("link", name="Emails", exact=True).click()
    expect(page.get_by_role("heading", name="Emails", exact=True)).to_be_visible()
    # when: they set the branding, with a logo
    page.get_by_label("Product name").fill("Acme Cloud")
    page.get_by_label("Primary colour").fill("#c2410c")
    page.get_by_label("Footer").fill("Acme Cloud Ltd · 1 Main Street · Springfield")
    page.get_by_label("Support address").fill("help@acme.example")
    page.get_by_label("Logo").set_input_files(
        {"name": "acme.png", "mimeType": "image/png", "buffer": png(120, 40)}
    )
    page.get_by_role("button", name="Save branding").click()
    expect(page.get_by_text("Branding saved.")).to_be_visible()
    expect(page.locator("#current-logo")).to_be_visible()
    # and a subject override with a typo is refused, naming the placeholder
    subject = page.get_by_label("Subject of Password reset")
    subject.fill("{{ product_nme }}: reset your password")
    page.get_by_role("button", name="Save texts").click()
    expect(page.locator(".error-summary")).to_contain_text(
        "unknown placeholder {{ product_nme }}"
    )
    page.get_by_label("Subject of Password reset").fill(
        "{{ product_name }}: reset your password, {{ user_name }}"
    )
    page.get_by_label("Intro of Password reset").fill(
        "Hello {{ user_name }}, <b>someone</b> asked to reset your password."
    )
    page.get_by_role("button", name="Save texts").click()
    expect(page.get_by_text("Email texts saved.")).to_be_visible()
    # then: the preview shows both parts, branded, the markup as typed
    page.locator("#preview-password_reset").click()
    expect(page.locator("#preview-subject")).to_have_text(
        "Acme Cloud: reset your password, partner-admin@acme.example"
    )
    frame = page.frame_locator("#preview-html")
    expect(frame.get_by_text("Choose a new password", exact=True)).to_be_visible()
    expect(frame.get_by_text("<b>someone</b>", exact=False)).to_be_visible()
    expect(frame.get_by_role("img", name="Acme Cloud")).to_be_visible()
    expect(page.locator("#preview-text")).to_contain_text("Acme Cloud Ltd")
    screenshot(page, "ops-email-preview")
    # when: they send the preview to themselves
    received_before = len(stack.sink.messages)
    page.get_by_role("button", name="Send this preview to me").click()
    expect(
        page.get_by_text("Preview queued to partner-admin@acme.example")
    ).to_be_visible()
    # then: it arrives through the partner's server, multipart, as previewed
    message = wait_for_message(stack.sink, ACME[0])
    assert len(stack.sink.messages) == received_before + 1
    parsed = message_from_bytes(message.data, policy=default)
    assert parsed["Subject"] == (
        "Acme Cloud: reset your password, partner-admin@acme.example"
    )
    text, html = (part.get_content() for part in parsed.iter_parts())
    assert "&lt;b&gt;someone&lt;/b&gt;" in html and "<b>someone</b>" in text
    assert "/email-logo/" in html
    page.locator("#preview-sent-status").click()
    expect(page.locator("body")).to_contain_text("Sent")
