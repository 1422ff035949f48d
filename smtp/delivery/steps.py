"""The steps of an SMTP session, as shown to a person, and how they fail."""

from __future__ import annotations

import base64
import smtplib
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings as django_settings

from smtp.selectors import SmtpSettings

REPLY_LIMIT = 300


@dataclass
class Step:
    """One step of an SMTP session, as shown to a person."""

    name: str
    status: str = "running"  # running, ok, failed
    duration_ms: int = 0
    reply_code: int | None = None
    reply: str = ""
    detail: str = ""
    hint: str = ""
    field: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class StepFailed(Exception):
    """A step failed; ``transient`` failures are worth retrying.

    ``steps`` are the session's steps up to and including the failed one.
    """

    def __init__(
        self,
        step: Step,
        *,
        transient: bool,
        blocked: bool = False,
        steps: list[Step] | None = None,
    ):
        super().__init__(f"{step.name}: {step.detail}")
        self.step = step
        self.transient = transient
        self.blocked = blocked
        self.steps = steps if steps is not None else [step]


@dataclass
class Outcome:
    """The result of sending (or verifying) one message."""

    ok: bool
    steps: list[Step] = field(default_factory=list)
    transient: bool = False
    blocked: bool = False
    # The server's reply to DATA, when a message was sent.
    reply: str = ""

    @property
    def failed_step(self) -> Step | None:
        return next((s for s in self.steps if s.status == "failed"), None)


def reply_text(raw: bytes | str | None) -> str:
    if raw is None:
        return ""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    text = " ".join(text.split())
    return text[:REPLY_LIMIT]


def timed_out(error: BaseException) -> bool:
    """A timeout, also when smtplib reports it as a closed connection."""
    if isinstance(error, TimeoutError | socket.timeout):
        return True
    return isinstance(error, smtplib.SMTPServerDisconnected) and "timed out" in str(
        error
    )


def is_transient_code(code: int | None) -> bool:
    return code is not None and 400 <= code < 500


class StepRecorder:
    """Keeps the steps of a session, tells ``on_step`` of each, and redacts the
    password (and its AUTH encodings) from anything a step records."""

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        timeout: float | None = None,
        on_step: Callable[[Step], None] | None = None,
    ):
        self.settings = settings
        self.timeout = float(timeout or django_settings.SMTP_TIMEOUT)
        self.on_step = on_step
        self.steps: list[Step] = []
        self._secrets = self._secret_forms()

    def _secret_forms(self) -> list[str]:
        """The password and its encodings in AUTH, so that replies never echo them."""
        password = self.settings.password.reveal()
        if not password:
            return []
        user = self.settings.username
        forms = [
            password,
            base64.b64encode(password.encode()).decode(),
            base64.b64encode(f"\0{user}\0{password}".encode()).decode(),
        ]
        return [form for form in forms if form]

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "********")
        return text

    def _begin(self, name: str) -> tuple[Step, float]:
        step = Step(name=name)
        self.steps.append(step)
        self._notify(step)
        return step, time.monotonic()

    def _notify(self, step: Step) -> None:
        if self.on_step is not None:
            self.on_step(step)

    def _finish(self, step: Step, started: float, **values: Any) -> Step:
        for key, value in values.items():
            setattr(step, key, value)
        step.reply = self._redact(step.reply)
        step.detail = self._redact(step.detail)
        step.duration_ms = int((time.monotonic() - started) * 1000)
        if step.status == "running":
            step.status = "ok"
        self._notify(step)
        return step

    def _fail(
        self,
        step: Step,
        started: float,
        *,
        transient: bool,
        blocked: bool = False,
        **values: Any,
    ) -> StepFailed:
        self._finish(step, started, status="failed", **values)
        return StepFailed(
            step, transient=transient, blocked=blocked, steps=list(self.steps)
        )

    def _io_failure(self, step: Step, started: float, error: Exception) -> StepFailed:
        """A timeout or lost connection in the middle of a step (transient)."""
        if timed_out(error):
            return self._fail(
                step,
                started,
                transient=True,
                detail=f"No reply within {self.timeout:g} s during {step.name}.",
                hint="The server is slow or unreachable right now; it is retried.",
            )
        if isinstance(error, smtplib.SMTPServerDisconnected | ConnectionError):
            return self._fail(
                step,
                started,
                transient=True,
                detail=f"The server closed the connection during {step.name}.",
                hint="The server may be overloaded or limiting connections; it is "
                "retried.",
            )
        return self._fail(
            step,
            started,
            transient=True,
            detail=f"Network error during {step.name}: {error}.",
            hint="Check that the server is reachable from this console.",
        )
