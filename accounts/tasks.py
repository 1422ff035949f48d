"""Celery tasks of the accounts app. Tasks take primitives, never objects."""

from __future__ import annotations

from celery import shared_task

from accounts.services import RESET_LINK_TASK, password_reset_send


@shared_task(name=RESET_LINK_TASK, ignore_result=True)
def password_reset_send_task(*, email: str) -> None:
    """Look the (normalised) address up and queue its reset link, if any."""
    password_reset_send(email=email)
