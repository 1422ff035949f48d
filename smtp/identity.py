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
