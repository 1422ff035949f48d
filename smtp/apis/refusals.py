"""Refusals of the services, as HTTP answers (for the APIs and the pages' JSON)."""

from __future__ import annotations

from typing import Any

from core.longpoll import WaitRefused
from smtp.services import TestEmailBusy, TestEmailConflict, TestEmailRefused

# The first class an error is an instance of decides its status.
STATUS = (
    (TestEmailBusy, 429),
    (WaitRefused, 429),
    (TestEmailConflict, 409),
)


def refusal_answer(
    error: TestEmailRefused | WaitRefused,
) -> tuple[dict[str, Any], int, dict[str, str]]:
    """The body, status and headers answering a refusal."""
    status = next(code for kind, code in STATUS if isinstance(error, kind))
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after else {}
    return {"error": error.message}, status, headers
