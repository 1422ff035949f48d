"""Small text checks shared by the apps."""

from __future__ import annotations

import unicodedata


def is_whole_number(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts "¹" or "²", which ``int``
    refuses."""
    return text.isascii() and text.isdigit()


def has_control_characters(text: str) -> bool:
    """C0 controls (NUL, ESC, tab...), DEL or C1 controls (Unicode category Cc).

    Django's ``validate_email`` accepts some in a quoted local part
    (``"a\\x1bb"@example.com``); an address goes into SMTP commands and headers as
    it is, so callers refuse them.
    """
    return any(unicodedata.category(char) == "Cc" for char in text)
