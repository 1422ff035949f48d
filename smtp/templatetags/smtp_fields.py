"""Rendering a form field's input with everything that describes it linked."""

from __future__ import annotations

from django import template
from django.forms import BoundField
from django.utils.safestring import SafeString

register = template.Library()


@register.simple_tag
def described_input(
    field: BoundField, *, hint: str = "", required: bool = False, helptext: bool = False
) -> SafeString:
    """The field's input, its ``aria-describedby`` naming its hint (the template's
    ``{id}_hint``), help text and errors, ``aria-invalid`` on errors and
    ``aria-required`` when the field must be filled in. ``helptext``: the
    template writes a ``{id}_helptext`` of its own."""
    ids = []
    if hint:
        ids.append(f"{field.auto_id}_hint")
    if field.help_text or helptext:
        ids.append(f"{field.auto_id}_helptext")
    if field.errors:
        ids.append(f"{field.auto_id}_error")
    attrs: dict[str, str] = {}
    if ids:
        attrs["aria-describedby"] = " ".join(ids)
    if field.errors:
        attrs["aria-invalid"] = "true"
    if required:
        attrs["aria-required"] = "true"
    return field.as_widget(attrs=attrs)
