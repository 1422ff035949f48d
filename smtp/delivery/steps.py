"""The steps of an SMTP session, as shown to a person, and how they fail."""

from __future__ import annotations

import logging
import smtplib
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any

from django.conf import settings as django_settings

from core.redaction import redact, secret_pattern
from smtp.delivery.client import DeadlineExceeded, ReplyTooLong
from smtp.delivery.server import SmtpServer

logger = logging.getLogger(__name__)

REPLY_LIMIT = 300
# C0 and C1 control characters and DEL: never shown, stored or exported.
_CONTROL = dict.fromkeys([*range(0x20), 0x7F, *range(0x80, 0xA0)], " ")


# How each step is named where a person reads it: the live view of a test
# (static/js/console.js), the steps tables, the audit log and its summaries.
STEP_LABELS = {
    "configuration": "Configuration",
    "claimed": "Picked up by a worker",
    "token": "OAuth2 token",
    "resolve": "Resolve host name (DNS)",
    "connect": "Connect (TCP)",
    "greeting": "Server greeting",
    "tls": "TLS",
    "ehlo": "EHLO",
    "auth": "Authenticate",
    "mail_from": "MAIL FROM (sender)",
    "rcpt_to": "RCPT TO (recipient)",
    "data": "DATA (message)",
    "rset": "RSET (nothing sent)",
    "reconnect": "Reconnect",
    "failover": "Failover",
    "lease": "Worker lease",
    "internal": "Internal error",
}


def step_label(name: str) -> str:
    """A step's name as a person reads it (the name itself if it has no label)."""
    return STEP_LABELS.get(name, name)


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
    # A stable name for the kind of failure (hints.BASIC_AUTH_DISABLED...).
    hint_code: str = ""

    def as_dict(self) -> dict[str, Any]:
        # What ``dataclasses.asdict`` gives, without its deep copy of each
        # value (they are all plain): every email sent stores its steps.
        return {name: getattr(self, name) for name in _STEP_FIELDS}


_STEP_FIELDS = tuple(f.name for f in fields(Step))


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
        cause: BaseException | None = None,
        closed: bool = False,
    ):
        super().__init__(f"{step.name}: {step.detail}")
        self.step = step
        self.transient = transient
        self.blocked = blocked
        # The server closed the connection (no reply, no timeout).
        self.closed = closed
        self.steps = steps if steps is not None else [step]
        # The unexpected exception that ended the session, if one did.
        self.cause = cause


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
    return " ".join(text.translate(_CONTROL).split())


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
    """Keeps the steps of a session, tells ``on_step`` of each, redacts the
    password (in any form a server might echo it) from anything a step records,
    and holds the session's deadline."""

    def __init__(
        self,
        server: SmtpServer,
        *,
        timeout: float | None = None,
        on_step: Callable[[Step], None] | None = None,
    ):
        self.server = server
        self.timeout = float(timeout or django_settings.SMTP_TIMEOUT)
        self.deadline_seconds = float(django_settings.SMTP_SESSION_DEADLINE)
        self.deadline = time.monotonic() + self.deadline_seconds
        self.on_step = on_step
        self.steps: list[Step] = []
        self._started: dict[int, float] = {}
        self._secret_values = [(server.password.reveal(), server.username)]
        if server.oauth2 is not None:
            self._secret_values += [
                (server.oauth2.client_secret.reveal(), ""),
                (server.oauth2.service_account_key.reveal(), ""),
            ]
        self._secrets = secret_pattern(self._secret_values)

    def add_secret(self, value: str) -> None:
        """Redact ``value`` too (an access token) from every step from now on."""
        self._secret_values.append((value, ""))
        self._secrets = secret_pattern(self._secret_values)

    def renew_deadline(self) -> None:
        """A new deadline, from now (a reused session's next transaction)."""
        self.deadline = time.monotonic() + self.deadline_seconds

    def budget(self) -> float:
        """Seconds the next operation may wait: the step timeout or the time left."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded("the session deadline passed")
        return min(self.timeout, left)

    def _redact(self, text: str) -> str:
        return redact(text, self._secrets)

    def _begin(self, name: str) -> tuple[Step, float]:
        step = Step(name=name)
        started = time.monotonic()
        self.steps.append(step)
        self._started[id(step)] = started
        self._notify(step)
        return step, started

    def _running(self) -> tuple[Step, float]:
        """The step in progress (or a new "internal" one) and when it began."""
        step = next((s for s in reversed(self.steps) if s.status == "running"), None)
        if step is None:
            return self._begin("internal")
        return step, self._started.get(id(step), time.monotonic())

    def _notify(self, step: Step) -> None:
        if self.on_step is not None:
            self.on_step(step)

    def _finish(self, step: Step, started: float, **values: Any) -> Step:
        for key, value in values.items():
            setattr(step, key, value)
        # Redacted whole, then shortened: a cut must not leave part of a secret.
        step.reply = self._redact(step.reply)[:REPLY_LIMIT]
        step.detail = self._redact(step.detail)
        step.hint = self._redact(step.hint)
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
        cause: BaseException | None = None,
        closed: bool = False,
        **values: Any,
    ) -> StepFailed:
        self._finish(step, started, status="failed", **values)
        return StepFailed(
            step,
            transient=transient,
            blocked=blocked,
            steps=list(self.steps),
            cause=cause,
            closed=closed,
        )

    def _io_failure(self, step: Step, started: float, error: Exception) -> StepFailed:
        """A deadline, an oversized reply, a timeout or a lost connection in the
        middle of a step."""
        if isinstance(error, DeadlineExceeded):
            return self._fail(
                step,
                started,
                transient=True,
                detail=f"The session took longer than the {self.deadline_seconds:g} s "
                f"allowed (SMTP_SESSION_DEADLINE) and was stopped during {step.name}.",
                hint="The server is too slow: it answers too slowly to be used. Check "
                "the server or ask its administrator; it is retried.",
            )
        if isinstance(error, ReplyTooLong):
            return self._fail(
                step,
                started,
                transient=False,
                detail=f"Reply too long during {step.name}: {error}.",
                hint="The server sent a reply far longer than SMTP allows: this is "
                "not a working mail server. Check Host and Port.",
                field="host",
            )
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
                closed=True,
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

    def _unexpected(self, error: Exception) -> StepFailed:
        """Any other exception ends the session as a failed step, never a crash.

        Its text is not kept (it may hold a credential); its type is, and the
        traceback goes to the log, where secrets are scrubbed.
        """
        step, started = self._running()
        kind = type(error).__name__
        if step.name == "auth":
            logger.error("Unexpected %s during SMTP AUTH (details withheld).", kind)
        else:
            logger.error(
                "Unexpected %s during SMTP step %s.", kind, step.name, exc_info=error
            )
        return self._fail(
            step,
            started,
            transient=True,
            cause=error,
            detail=f"The session ended with an unexpected error ({kind}) during "
            f"{step.name}.",
            hint="This is a fault of the console or of the server's reply, not of "
            "your settings; it is logged for the operator and retried.",
        )

    @contextmanager
    def failing_as_steps(self) -> Iterator[None]:
        """Whatever goes wrong inside is a ``StepFailed``, with the step recorded."""
        try:
            yield
        except StepFailed:
            raise
        except (DeadlineExceeded, ReplyTooLong) as error:
            raise self._io_failure(*self._running(), error) from None
        except Exception as error:
            raise self._unexpected(error) from None
