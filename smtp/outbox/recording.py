"""Recording attempts: rows, attempts and audit events; scheduling retries."""

from __future__ import annotations

import contextlib
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache, partial
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Field
from django.utils import timezone

from audit.models import Category
from audit.services import EventData, audit_events_record_bulk, event_scope
from core.postgresql import prepared_in_server
from smtp.delivery import Step
from smtp.delivery.server import SmtpServer
from smtp.delivery.steps import step_label
from smtp.models import (
    Email,
    EmailAttempt,
    EmailKind,
    EmailStatus,
    Level,
    SmtpDraft,
)
from smtp.outbox.publish import email_publish

MAX_RETRY_DELAY = 15 * 60


@dataclass
class Result:
    email: Email
    ok: bool
    steps: list[dict]
    started_at: datetime
    duration_ms: int
    settings: SmtpServer | None
    transient: bool = False
    reply: str = ""
    # A time limit stopped the session: the batch stops here too.
    interrupted: bool = False
    # Its attempt is written already (``record_accepted``).
    attempt_saved: bool = False
    # The level whose configuration could not open a session before
    # ``settings`` (the next level's) took over: failover.
    fallback_from: str = ""
    # The server was throttling: the email waits ``defer_for`` seconds without
    # using a retry.
    throttled: bool = False
    defer_for: float = 0.0

    @property
    def failed(self) -> dict | None:
        """The failed step of the last session tried, if any (after a failover,
        the steps of the sessions that could not be opened come first)."""
        start = 0
        for index, step in enumerate(self.steps):
            if step["name"] == "failover":
                start = index + 1
        return next((s for s in self.steps[start:] if s["status"] == "failed"), None)

    @classmethod
    def failure(
        cls,
        email: Email,
        steps: list[dict],
        server: SmtpServer | None,
        *,
        transient: bool,
    ) -> Result:
        """A failure found without a session of its own (no time spent on it)."""
        return cls(
            email=email,
            ok=False,
            steps=steps,
            started_at=timezone.now(),
            duration_ms=0,
            settings=server,
            transient=transient,
        )

    @classmethod
    def timed(
        cls,
        email: Email,
        server: SmtpServer,
        steps: list[Step],
        *,
        ok: bool,
        started_at: datetime,
        clock: float,
        **values: Any,
    ) -> Result:
        """An attempt that ran from ``started_at`` (``clock``, monotonic) until now."""
        return cls(
            email=email,
            ok=ok,
            steps=[step.as_dict() for step in steps],
            started_at=started_at,
            duration_ms=int((time.monotonic() - clock) * 1000),
            settings=server,
            **values,
        )


def retry_delay(attempt: int) -> float:
    """Seconds before retry ``attempt`` + 1: exponential, with jitter."""
    delay = min(MAX_RETRY_DELAY, settings.SMTP_RETRY_BASE_SECONDS * 2 ** (attempt - 1))
    return delay * secrets.SystemRandom().uniform(0.5, 1.0)


GREYLISTING = re.compile(r"greylist|try again later", re.IGNORECASE)


def greylisted(step: dict) -> bool:
    """A 450/451 reply that asks for a later try (greylisting): an immediate retry
    only counts against the sender."""
    return step.get("reply_code") in (450, 451) and bool(
        GREYLISTING.search(step.get("reply") or "")
    )


def _retry_delay_after(step: dict, attempt: int) -> float:
    delay = retry_delay(attempt)
    if greylisted(step):
        least = settings.SMTP_GREYLIST_SECONDS
        delay = max(delay, least * secrets.SystemRandom().uniform(1.0, 1.25))
    return delay


@dataclass
class _Recorded:
    emails: list[Email] = field(default_factory=list)
    attempts: list[EmailAttempt] = field(default_factory=list)
    events: list[EventData] = field(default_factory=list)
    # (email id, kind, delay)
    retries: list[tuple[int, str, float]] = field(default_factory=list)
    drafts: list[int] = field(default_factory=list)


RECORDED_FIELDS = [
    "status",
    "attempts",
    "steps",
    "progress",
    "lease_until",
    "claim_token",
    "rehands",
    "deferrals",
    "level_used",
    "fallback_from",
    "server",
    "failed_step",
    "reply_code",
    "last_error",
    "hint",
    "error_field",
    "next_attempt_at",
    "sent_at",
    "finished_at",
]


def attempt_number(email: Email) -> int:
    """The number of the email's next attempt row: after every counted attempt
    and every time it was put back without one (``deferrals``), so that a
    throttled attempt and a counted one never share a number. The sweeper finds
    an accepted, unrecorded attempt by it."""
    return email.attempts + email.deferrals + 1


def _attempt_values(
    result: Result, number: int, level: str, server: str
) -> dict[str, Any]:
    """The columns of an attempt row (the email by id)."""
    failed = result.failed or {}
    return {
        "email_id": result.email.pk,
        "number": number,
        "started_at": result.started_at,
        "duration_ms": result.duration_ms,
        "ok": result.ok,
        "transient": result.transient,
        "level": level,
        "fallback_from": result.fallback_from,
        "server": server,
        "failed_step": failed.get("name", ""),
        "reply_code": failed.get("reply_code"),
        "error": failed.get("detail", ""),
        "throttled": result.throttled,
        "steps": result.steps,
    }


def _attempt(result: Result, number: int, level: str, server: str) -> EmailAttempt:
    return EmailAttempt(**_attempt_values(result, number, level, server))


def _note_attempt(email: Email, result: Result, level: str, server: str) -> None:
    """What the row shows of its last attempt, whatever comes of it."""
    failed = result.failed or {}
    email.steps = result.steps
    email.progress = ""
    email.lease_until = None
    email.claim_token = None
    # An attempt got recorded: the worker did not stop on this email.
    email.rehands = 0
    email.level_used = level
    email.fallback_from = result.fallback_from
    email.server = server
    email.failed_step = failed.get("name", "")
    email.reply_code = failed.get("reply_code")
    email.last_error = failed.get("detail", "")
    email.hint = failed.get("hint", "")
    email.error_field = failed.get("field", "")


def _apply_result(result: Result, now: datetime, out: _Recorded) -> None:
    email = result.email
    used = result.settings
    failed = result.failed or {}
    # Without settings (no configuration, or recovered by the sweeper): what the
    # row says.
    level = used.level if used else (email.level_used or Level.NONE)
    server = f"{used.host}:{used.port}" if used else email.server
    if not result.attempt_saved:
        out.attempts.append(_attempt(result, attempt_number(email), level, server))
    _note_attempt(email, result, level, server)
    if result.throttled and not _deferred_too_long(email, now):
        _defer_throttled(result, now, out, level=level, server=server)
        return
    number = email.attempts + 1
    max_attempts = 1 if email.is_test or used is None else used.retries + 1
    email.attempts = number
    base = {
        "email_id": email.pk,
        "kind": email.kind,
        "recipient": email.recipient,
        "subject": email.subject,
        "message_id": email.message_id,
        "level": level,
        "server": server,
        "attempt": number,
        "steps": result.steps,
        # The level that sent it (or tried last), and the one whose server could
        # not be reached before it ("": no failover).
        "level_used": level,
        "fallback_from": result.fallback_from,
    }
    label = email.get_kind_display()
    if result.ok:
        email.status = EmailStatus.SENT
        # Already set if the sweeper records it for a worker that stopped.
        email.sent_at = email.finished_at = email.sent_at or now
        detail = {**base, "reply": result.reply, "duration_ms": result.duration_ms}
        if email.kind == EmailKind.VERIFY:
            # A verification ends with RSET: its own type, so that a search for
            # sent emails never counts one.
            event_type = "email.verified"
            summary = (
                f"Verified {level} SMTP {server} for {email.recipient}: every step "
                "up to RCPT TO worked; nothing was sent"
            )
        else:
            event_type = "email.sent"
            summary = f"{label} to {email.recipient} sent via {level} SMTP {server}"
            if result.fallback_from:
                summary += f" (failover from {result.fallback_from})"
    else:
        problem = {
            "step": failed.get("name", ""),
            "reply_code": failed.get("reply_code"),
            "reason": failed.get("detail", ""),
            "hint": failed.get("hint", ""),
        }
        if failed.get("hint_code"):
            problem["hint_code"] = failed["hint_code"]
        if result.transient and number < max_attempts and not result.throttled:
            delay = _retry_delay_after(failed, number)
            email.status = EmailStatus.QUEUED
            email.next_attempt_at = now + timedelta(seconds=delay)
            out.retries.append((email.pk, email.kind, delay))
            event_type = "email.deferred"
            summary = (
                f"{label} to {email.recipient} deferred at "
                f"{step_label(problem['step'])}; "
                f"retry {number} of {max_attempts - 1} in {delay:.0f} s"
            )
            detail = {
                **base,
                **problem,
                "next_attempt_at": email.next_attempt_at.isoformat(),
            }
        else:
            if result.throttled:
                # Throttled for longer than anyone waits: it fails, saying so.
                email.last_error = problem["reason"] = _too_long_reason(email, now)
            email.status = EmailStatus.FAILED
            email.finished_at = now
            event_type = "email.failed"
            summary = (
                f"{label} to {email.recipient} failed at {step_label(problem['step'])}"
            )
            detail = {**base, **problem, "final": True}
    if email.is_final and email.draft_id is not None:
        out.drafts.append(email.draft_id)
    out.emails.append(email)
    out.events.append(
        EventData(
            category=Category.SYSTEMAUDIT,
            type=event_type,
            summary=summary,
            **event_scope(email),
            detail=detail,
        )
    )


def _deferred_too_long(email: Email, now: datetime) -> bool:
    return (now - email.created_at).total_seconds() > settings.SMTP_MAX_DEFER_SECONDS


def _too_long_reason(email: Email, now: datetime) -> str:
    hours = (now - email.created_at).total_seconds() / 3600
    return (
        f"Not sent: the server was still throttling {hours:.1f} h after this email "
        f"was queued (SMTP_MAX_DEFER_SECONDS is {settings.SMTP_MAX_DEFER_SECONDS} "
        "s); it is not tried again."
    )


def _defer_throttled(
    result: Result, now: datetime, out: _Recorded, *, level: str, server: str
) -> None:
    """After a throttled attempt (recorded, ``throttled``): the email back in the
    queue for ``result.defer_for`` seconds, its retries untouched."""
    email = result.email
    failed = result.failed or {}
    delay = result.defer_for
    email.deferrals += 1
    email.status = EmailStatus.QUEUED
    email.next_attempt_at = now + timedelta(seconds=delay)
    out.retries.append((email.pk, email.kind, delay))
    out.emails.append(email)
    out.events.append(
        EventData(
            category=Category.SYSTEMAUDIT,
            type="email.deferred",
            summary=f"{email.get_kind_display()} to {email.recipient} deferred at "
            f"{step_label(failed.get('name', ''))}: the server is throttling; "
            f"tried again in {delay:.0f} s without using a retry",
            **event_scope(email),
            detail={
                "email_id": email.pk,
                "kind": email.kind,
                "recipient": email.recipient,
                "subject": email.subject,
                "message_id": email.message_id,
                "level": level,
                "server": server,
                "attempt": email.attempts,
                "deferrals": email.deferrals,
                "reason": "throttled",
                "step": failed.get("name", ""),
                "reply_code": failed.get("reply_code"),
                "reply": failed.get("reply", ""),
                "hint": failed.get("hint", ""),
                "steps": result.steps,
                "next_attempt_at": email.next_attempt_at.isoformat(),
            },
        )
    )


def record_results(results: list[Result], *, token: uuid.UUID) -> None:
    """Store the outcome of every result, in one transaction; schedule retries."""
    if not results:
        return
    now = timezone.now()
    recorded = _Recorded()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Waits for the disk, also for what ``record_accepted`` wrote before.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO ON")
        owned = set(
            Email.objects.select_for_update()
            .filter(pk__in=[r.email.pk for r in results], claim_token=token)
            .values_list("pk", flat=True)
        )
        for result in results:
            if result.email.pk in owned:
                _apply_result(result, now, recorded)
        if not recorded.emails:
            return
        _store_rows(recorded.emails, now)
        EmailAttempt.objects.bulk_create(recorded.attempts)
        audit_events_record_bulk(recorded.events)
        if recorded.drafts:
            # The unsaved form values live only as long as their test.
            SmtpDraft.objects.filter(pk__in=recorded.drafts).delete()
        for email_id, kind, delay in recorded.retries:
            transaction.on_commit(
                partial(email_publish, email_id, kind=kind, countdown=delay)
            )


@contextmanager
def commits_not_waiting_for_disk() -> Iterator[None]:
    """Within: commits of this connection do not wait for the disk flush
    (PostgreSQL's ``synchronous_commit`` off), except ``record_results``.

    A commit is still a commit for every other connection and survives this
    worker stopping; only a crash of PostgreSQL itself could lose the last
    moments of them, and the next ``record_results`` flushes them all.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO OFF")
    try:
        yield
    finally:
        # A broken connection is closed after the task; nothing to reset then.
        with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
            cursor.execute("RESET synchronous_commit")


def _insert_attempt(values: dict[str, Any]) -> None:
    """One attempt row in one plain INSERT: the model's save machinery costs
    more than the round trip, once per email sent."""
    sql, fields = _attempt_insert(connection.ops.quote_name, tuple(values))
    with prepared_in_server(), connection.cursor() as cursor:
        cursor.execute(
            sql,
            [
                field.get_db_prep_save(value, connection)
                for field, value in zip(fields, values.values(), strict=True)
            ],
        )


@lru_cache(maxsize=16)
def _attempt_insert(
    quote: Callable[[str], str], names: tuple[str, ...]
) -> tuple[str, list[Field]]:
    """The INSERT of an attempt with these columns, and their fields: worked out
    once, not for every email sent."""
    meta = EmailAttempt._meta
    fields = [meta.get_field(name) for name in names]
    columns = ", ".join(quote(field.column) for field in fields)
    marks = ", ".join(["%s"] * len(fields))
    # Only names from the model's metadata and placeholders are formatted in.
    sql = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({marks})"  # noqa: S608
    return sql, fields


def record_accepted(result: Result) -> None:
    """Write the attempt of an email the server accepted at once, in one
    statement, before the next one is sent; its row and ``email.sent`` event
    follow with the next ``record_results``.

    If the worker stops first, the sweeper finds the attempt and records the
    email as sent (``sent_unrecorded``) instead of sending it again.
    """
    used = result.settings
    _insert_attempt(
        _attempt_values(
            result,
            attempt_number(result.email),
            used.level,
            f"{used.host}:{used.port}",
        )
    )
    result.attempt_saved = True


def sent_unrecorded(email: Email, attempt: EmailAttempt) -> Result:
    """The result of an email whose attempt ``record_accepted`` wrote before its
    worker stopped."""
    steps = attempt.steps or []
    email.level_used, email.server = attempt.level, attempt.server
    email.fallback_from = attempt.fallback_from
    email.sent_at = attempt.started_at + timedelta(milliseconds=attempt.duration_ms)
    return Result(
        email=email,
        ok=True,
        steps=steps,
        started_at=attempt.started_at,
        duration_ms=attempt.duration_ms,
        settings=None,
        reply=steps[-1].get("reply", "") if steps else "",
        attempt_saved=True,
        fallback_from=attempt.fallback_from,
    )


# A sent system email keeps its steps in its attempt, not on its row; its
# attempt count goes up by one in the database.
# Nor its deferrals, which differ from one email to the next and do not change.
GROUPED_FIELDS = [
    name for name in RECORDED_FIELDS if name not in ("attempts", "steps", "deferrals")
]


def _store_rows(emails: list[Email], now: datetime) -> None:
    """Write the recorded fields: one UPDATE for every system email that was sent
    through the same server (their recorded values are the same), one per row
    for the rest (tests, failures)."""
    sent: dict[tuple[str, str, str], list[Email]] = {}
    for email in emails:
        if email.status == EmailStatus.SENT and not email.is_test:
            key = (email.level_used, email.fallback_from, email.server)
            sent.setdefault(key, []).append(email)
        else:
            Email.objects.filter(pk=email.pk).update(
                **{name: getattr(email, name) for name in RECORDED_FIELDS}
            )
    for group in sent.values():
        Email.objects.filter(pk__in=[email.pk for email in group]).update(
            **{name: getattr(group[0], name) for name in GROUPED_FIELDS},
            attempts=F("attempts") + 1,
            steps=[],
        )
