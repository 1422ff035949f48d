"""The rules of a sender identity: display names, and the sender domains a partner
allows its organizations (and itself) to send as.

Below the validators, which apply them to a configuration; the branding and
allowed-domain forms of the Ops Console use them too. Every message names the
field and says how to fix it.
"""

from __future__ import annotations

import re

from core.text import has_control_characters

SENDER_NAME_MAX = 100
MAX_ALLOWED_DOMAINS = 50

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def validate_display_name(
    name: str, label: str, value: str, errors: dict[str, list[str]]
) -> str:
    """A display name for a header (From's name): one line, no control
    characters, at most ``SENDER_NAME_MAX`` characters; returns it stripped.

    Quotes, commas and angle brackets are fine: the message quotes or encodes
    the name, so it never becomes part of the address.
    """
    text = (value or "").strip()
    if "\r" in text or "\n" in text:
        errors.setdefault(name, []).append(
            f"{label} must not contain line breaks: enter it on one line."
        )
    elif has_control_characters(text):
        errors.setdefault(name, []).append(
            f"{label} must not contain control characters (such as ESC, tab or "
            "DEL): retype it without them."
        )
    elif len(text) > SENDER_NAME_MAX:
        errors.setdefault(name, []).append(
            f"{label} must be at most {SENDER_NAME_MAX} characters."
        )
    return text


def _ascii_domain(domain: str) -> str | None:
    """``domain`` in lower-case A-labels, or ``None`` if it is not a domain name."""
    name = domain.strip().rstrip(".").lower()
    try:
        ascii_name = name.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or len(labels) < 2:
        return None
    if not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        return None
    return ascii_name


def allowed_domains_parse(
    values: list[str], errors: dict[str, list[str]], *, name: str, label: str
) -> list[str]:
    """Domain patterns (``acme.example`` or ``*.acme.example``), normalized to
    lower-case A-labels, without duplicates; adds a message per bad entry."""
    patterns: list[str] = []
    for raw in values:
        entry = raw.strip()
        if not entry:
            continue
        wildcard = entry.startswith("*.")
        domain = entry[2:] if wildcard else entry
        if "@" in entry:
            errors.setdefault(name, []).append(
                f"{label}: {entry!r} is an address; enter only its domain, e.g. "
                f"{entry.rsplit('@', 1)[1]}."
            )
            continue
        ascii_name = _ascii_domain(domain) if "*" not in domain else None
        if ascii_name is None:
            errors.setdefault(name, []).append(
                f"{label}: {entry!r} is not a domain name. Enter one domain a "
                "line, e.g. acme.example, or *.acme.example for its subdomains."
            )
            continue
        pattern = f"*.{ascii_name}" if wildcard else ascii_name
        if pattern not in patterns:
            patterns.append(pattern)
    if len(patterns) > MAX_ALLOWED_DOMAINS:
        errors.setdefault(name, []).append(
            f"{label}: at most {MAX_ALLOWED_DOMAINS} domains."
        )
    return patterns


def domain_allowed(address: str, patterns: list[str] | tuple[str, ...]) -> bool:
    """Whether ``address``'s domain is one of ``patterns`` (no patterns: any).

    ``*.acme.example`` matches the subdomains of acme.example (eu.acme.example),
    not acme.example itself: list both to allow both.
    """
    if not patterns:
        return True
    domain = _ascii_domain(address.rsplit("@", 1)[-1]) if "@" in address else None
    if domain is None:
        return False
    for pattern in patterns:
        if pattern.startswith("*."):
            if domain.endswith(pattern[1:]):
                return True
        elif domain == pattern:
            return True
    return False


def allowed_domains_text(patterns: list[str] | tuple[str, ...]) -> str:
    return ", ".join(patterns)


def check_allowed_domain(
    name: str,
    label: str,
    address: str,
    patterns: list[str] | tuple[str, ...],
    errors: dict[str, list[str]],
) -> None:
    """Add a message naming the field and the allowed domains when ``address`` is
    outside them."""
    if address and name not in errors and not domain_allowed(address, patterns):
        errors.setdefault(name, []).append(
            f"{label} {address} is outside the partner's allowed sender domains "
            f"({allowed_domains_text(patterns)}): use an address at one of them."
        )


# -- branding and texts ------------------------------------------------------------

# The placeholders a partner's subject and intro may use: a fixed set, filled in
# by the console (escaped in HTML), never a template language.
PLACEHOLDERS = {
    "user_name": "the recipient's name (or address)",
    "user_email": "the recipient's address",
    "organization": "the organization's name",
    "partner": "the partner's name",
    "product_name": "the product name of the branding",
    "link": "the one-time link",
    "expires_in": "how long the link works, e.g. 3 days",
    "title": "an alert's title",
    "severity": "an alert's severity, e.g. CRITICAL",
}
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
SUBJECT_MAX = 200
INTRO_MAX = 1000
FOOTER_MAX = 500
PRODUCT_NAME_MAX = 100
_COLOR = re.compile(r"^#[0-9a-f]{6}$")
LOGO_MAX_BYTES = 100 * 1024
# Types checked by their first bytes, not by the name or the browser's word. SVG
# is refused: it is a document that can carry scripts and remote references.
_LOGO_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def placeholders_text() -> str:
    return ", ".join(f"{{{{ {name} }}}}" for name in PLACEHOLDERS)


def validate_template_text(
    name: str,
    label: str,
    value: str,
    errors: dict[str, list[str]],
    *,
    one_line: bool,
    limit: int,
) -> str:
    """A subject (one line) or intro paragraph with placeholders of the fixed set;
    returns it stripped. Unknown placeholders are named in the message."""
    text = (value or "").strip().replace("\r\n", "\n")
    problems: list[str] = []
    if one_line and ("\n" in text or "\r" in text):
        problems.append(f"{label} must not contain line breaks: enter it on one line.")
    elif has_control_characters(text.replace("\n", "")):
        problems.append(
            f"{label} must not contain control characters (such as ESC, tab or "
            "DEL): retype it without them."
        )
    if len(text) > limit:
        problems.append(f"{label} must be at most {limit} characters.")
    if "{%" in text or "%}" in text:
        problems.append(
            f"{label}: template tags ({{% ... %}}) are not allowed; use only the "
            f"placeholders {placeholders_text()}."
        )
    unknown = [
        match.group(1)
        for match in _PLACEHOLDER.finditer(text)
        if match.group(1) not in PLACEHOLDERS
    ]
    for placeholder in dict.fromkeys(unknown):
        problems.append(
            f"{label}: unknown placeholder {{{{ {placeholder} }}}}. Use one of "
            f"{placeholders_text()}."
        )
    if problems:
        errors.setdefault(name, []).extend(problems)
    return text


def fill_placeholders(text: str, values: dict[str, str]) -> str:
    """``text`` with each known placeholder replaced by its value (plain text)."""
    return _PLACEHOLDER.sub(
        lambda match: values.get(match.group(1), match.group(0)), text
    )


def validate_color(
    name: str, label: str, value: str, errors: dict[str, list[str]]
) -> str:
    """A colour as ``#rrggbb`` (lower case), or empty."""
    color = (value or "").strip().lower()
    if color and not _COLOR.match(color):
        errors.setdefault(name, []).append(
            f"{label} must be a colour like #1a73e8 (# and six hex digits)."
        )
    return color


def logo_type(name: str, data: bytes, errors: dict[str, list[str]]) -> str:
    """The MIME type of an uploaded logo, checked by its bytes and size."""
    if len(data) > LOGO_MAX_BYTES:
        errors.setdefault(name, []).append(
            f"Logo must be at most {LOGO_MAX_BYTES // 1024} KB: this file is "
            f"{(len(data) + 1023) // 1024} KB. Export it smaller (e.g. 400 px wide)."
        )
        return ""
    for signature, content_type in _LOGO_SIGNATURES:
        if data.startswith(signature):
            return content_type
    head = data[:512].lstrip().lower()
    kind = "an SVG image" if b"<svg" in head or b"<?xml" in head else "not an image"
    errors.setdefault(name, []).append(
        f"Logo must be a PNG, JPEG or GIF image; this file is {kind}. (SVG is "
        "refused: it can carry scripts.)"
    )
    return ""
