"""Every console page, in both themes and at desktop and phone sizes: axe-core
finds no serious or critical violation, nothing is wider than the screen, wide
content scrolls in a region a keyboard can reach, and dark mode is dark."""

from __future__ import annotations

import re

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from tests.e2e.conftest import api_call, expect_console_error, login, screenshot

GLOBEX = ("partner-admin@globex.example", "Globex-Partner-Pass-1")
ORG = ("org-admin@globex-main.example", "Globex-Main-Pass-1")
THEMES = ["light", "dark"]
VIEWPORTS = [(1440, 900), (390, 844)]
FAILING_IMPACTS = {"serious", "critical"}

# Every <details> open, so that what they hide (the audit detail JSON, an
# email's steps) is checked too; then two frames for the scripts to react.
OPEN_EVERYTHING = """async () => {
  document.querySelectorAll("details").forEach((d) => { d.open = true; });
  document.querySelectorAll('[data-event-toggle][aria-expanded="false"]')
    .forEach((button) => button.click());
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
}"""

# Elements that scroll sideways but that a keyboard cannot reach or that have
# no name (axe's scrollable-region-focusable checks only the first part).
UNREACHABLE_SCROLLERS = """() => [...document.querySelectorAll("body *")]
  .filter((el) => {
    const style = getComputedStyle(el);
    return ["auto", "scroll"].includes(style.overflowX)
      && el.scrollWidth > el.clientWidth + 1;
  })
  .filter((el) => el.tabIndex < 0 || !(el.getAttribute("aria-label") || "").trim())
  .map((el) => el.tagName.toLowerCase() + "." + [...el.classList].join("."))"""

# The relative luminance of the page's background (0 black, 1 white): the
# body's, or the root's where the body has none.
BACKGROUND_LUMINANCE = """() => {
  const painted = (el) => !/^rgba\\(.*, 0\\)$|^transparent$/.test(
    getComputedStyle(el).backgroundColor);
  const el = painted(document.body) ? document.body : document.documentElement;
  const [r, g, b] = getComputedStyle(el).backgroundColor
    .match(/\\d+/g).slice(0, 3).map((v) => {
      const c = Number(v) / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}"""


@pytest.fixture(scope="module")
def sample_emails(browser, stack) -> dict[str, int]:
    """One test email of each console (through the controller default, a sink)."""
    ids = {}
    for console, who in (("ops", GLOBEX), ("web", ORG)):
        _status, body = api_call(
            browser,
            stack,
            *who,
            "POST",
            "/event/v1/email/config/verification?wait=10",
            {"recipient_email": who[0]},
        )
        assert body and "id" in body, body
        ids[console] = body["id"]
    return ids


def _pages(who: str, emails: dict[str, int]) -> list[str]:
    if who == "anonymous":
        return ["/login/", "/password-reset/"]
    if who == "ops":
        return [
            "/ops/smtp/",
            "/ops/organizations/",
            "organization",  # the first organization's page, from the list
            "/ops/organizations/new/",
            "/ops/audit-logs/?range=7d",
            f"/ops/emails/{emails['ops']}/",
            "/ops/organizations/999999/",  # the 404 page
        ]
    return [
        "/console/infrastructure/system/settings/",
        "/console/infrastructure/system/settings/smtp/",
        "/console/audit-logs/?range=7d",
        f"/console/emails/{emails['web']}/",
    ]


def _check_page(page, path: str, *, width: int, theme: str) -> list[str]:
    problems = []
    page.evaluate(OPEN_EVERYTHING)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    if overflow > 0:
        problems.append(f"{path}: {overflow}px wider than a {width}px screen")
    for scroller in page.evaluate(UNREACHABLE_SCROLLERS):
        problems.append(f"{path}: {scroller} scrolls but is not focusable and named")
    results = Axe().run(page).response
    for violation in results["violations"]:
        if violation["impact"] in FAILING_IMPACTS:
            targets = [node["target"] for node in violation["nodes"]][:5]
            problems.append(
                f"{path}: axe {violation['id']} ({violation['impact']}) at {targets}"
            )
    luminance = page.evaluate(BACKGROUND_LUMINANCE)
    if (theme == "dark") != (luminance < 0.2):
        problems.append(f"{path}: background luminance {luminance:.2f} in {theme}")
    return problems


@pytest.mark.parametrize("who", ["anonymous", "ops", "web"])
def test_every_page_passes_axe_and_fits_the_screen(open_browser, sample_emails, who):
    """Each page is loaded once and checked at each size in each theme."""
    page = open_browser(*VIEWPORTS[0])
    if who != "anonymous":
        login(page, *(GLOBEX if who == "ops" else ORG))
    problems = []
    for path in _pages(who, sample_emails):
        if path == "organization":
            page.goto("/ops/organizations/")
            page.locator("table a[href^='/ops/organizations/']").first.click()
            page.wait_for_load_state()
            path = page.url
        else:
            if "999999" in path:
                expect_console_error(page, "404")
            page.goto(path)
        for width, height in VIEWPORTS:
            page.set_viewport_size({"width": width, "height": height})
            for theme in THEMES:
                page.emulate_media(color_scheme=theme)
                problems += [
                    f"[{width}x{height} {theme}] {problem}"
                    for problem in _check_page(page, path, width=width, theme=theme)
                ]
    assert not problems, "\n".join(problems)


def test_on_a_phone_no_blank_band_under_the_navigation(open_browser):
    page = open_browser(390, 844)
    login(page, *ORG)
    page.goto("/console/infrastructure/system/settings/")  # a short page
    band = page.evaluate(
        """() => {
          const nav = document.querySelector(".sidenav");
          const list = nav.querySelector("ul");
          return nav.getBoundingClientRect().bottom
               - list.getBoundingClientRect().bottom;
        }"""
    )
    assert band <= 16, f"{band}px of blank under the navigation"


def test_on_a_phone_wide_tables_scroll_in_a_named_focusable_region(
    open_browser, sample_emails
):
    page = open_browser(390, 844)
    login(page, *GLOBEX)
    for path, table in (
        ("/ops/smtp/", ".effective-table"),
        (f"/ops/emails/{sample_emails['ops']}/", ".steps-table"),
    ):
        page.goto(path)
        region = page.locator(f".table-wrap:has({table})").first
        expect(region).to_have_attribute("tabindex", "0")
        expect(region).to_have_attribute("role", "region")
        expect(region).to_have_attribute("aria-label", re.compile(r"\S"))
        # the visible cue, and the keyboard scrolls it
        expect(page.locator(f".table-wrap:has({table}) + .scroll-cue")).to_be_visible()
        region.focus()
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")
        # Chromium animates keyboard scrolling: the first pixels come a frame
        # or more later (on a busy machine, later than the next line).
        page.wait_for_function(
            "el => el.scrollLeft > 0", arg=region.element_handle(), timeout=5000
        )


def test_on_a_phone_the_audit_detail_json_is_focusable_when_it_scrolls(
    open_browser, sample_emails
):
    page = open_browser(390, 844)
    login(page, *GLOBEX)
    page.goto("/ops/audit-logs/?range=7d")
    page.evaluate(OPEN_EVERYTHING)
    json = page.locator(".detail-json").first
    assert json.evaluate("el => el.scrollWidth > el.clientWidth")
    expect(json).to_have_attribute("tabindex", "0")
    expect(json).to_have_attribute("aria-label", re.compile(r"\S"))


def test_dark_mode_screenshot(open_browser, sample_emails):
    page = open_browser(1440, 900, color_scheme="dark")
    login(page, *GLOBEX)
    page.goto("/ops/smtp/")
    expect(page.locator("[data-effective-source]")).to_be_visible()
    screenshot(page, "ops-smtp-dark")
    page.goto("/ops/audit-logs/?range=7d")
    screenshot(page, "ops-audit-log-dark")


def test_the_organization_page_shows_its_smtp_and_leads_to_its_audit_events(
    open_browser,
):
    page = open_browser()
    login(page, *GLOBEX)
    page.goto("/ops/organizations/")
    expect(page.locator("#inherit-source")).to_contain_text("inherits")
    page.get_by_role("link", name="Globex Main").click()
    in_effect = page.locator("#org-smtp")
    expect(in_effect.locator("[data-effective-source]")).to_be_visible()
    expect(in_effect).to_contain_text("Health")
    expect(page.locator("#org-own-smtp")).to_be_visible()
    page.get_by_role("link", name="Audit events of Globex Main").click()
    expect(page).to_have_url(re.compile(r"/ops/audit-logs/\?organization=globex-main"))
    expect(page.get_by_label("Organization")).to_have_value("globex-main")
