"""axe-core in the browser: the accessibility rules a page breaks.

The axe-core script ships inside the ``axe-playwright-python`` package (a dev
dependency); it is read from there and run in the page under test.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

SERIOUS = ("serious", "critical")


@cache
def axe_script() -> str:
    return (resources.files("axe_playwright_python") / "axe.min.js").read_text()


def axe_violations(page, *, impacts: tuple[str, ...] = SERIOUS) -> list[str]:
    """Every violation of ``impacts`` on the page, as "rule (impact): target"."""
    # Evaluated through the browser's debugging protocol, which the page's
    # Content-Security-Policy (script-src 'self') does not govern.
    page.evaluate(axe_script())
    result = page.evaluate(
        """async () => await axe.run(document, {
            resultTypes: ["violations"],
        })"""
    )
    return [
        f"{violation['id']} ({violation['impact']}): "
        + ", ".join(str(node["target"]) for node in violation["nodes"][:5])
        for violation in result["violations"]
        if violation["impact"] in impacts
    ]
