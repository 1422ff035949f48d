"""Template filters that name SMTP things as a person reads them."""

from __future__ import annotations

from django import template

from smtp.delivery.steps import step_label as _step_label

register = template.Library()


@register.filter
def step_label(name: str) -> str:
    """``{{ step.name|step_label }}``: "RCPT TO (recipient)" for ``rcpt_to``."""
    return _step_label(name or "")
