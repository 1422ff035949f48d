"""Small text checks shared by the apps."""

from __future__ import annotations


def is_whole_number(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts "¹" or "²", which ``int``
    refuses."""
    return text.isascii() and text.isdigit()
