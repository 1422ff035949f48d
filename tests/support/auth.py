"""Logging in as a person does: through a request (login lockout needs one)."""

from __future__ import annotations

from django.test import Client, RequestFactory


def log_in(client: Client, email: str, password: str) -> bool:
    """``client.login`` with the request django-axes' backend requires."""
    request = RequestFactory().post("/login/")
    return client.login(request=request, username=email, password=password)


def can_log_in(email: str, password: str) -> bool:
    return log_in(Client(), email, password)
