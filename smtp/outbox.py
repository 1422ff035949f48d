"""The outbox: every email is a row, and the row is the truth.

``email_enqueue`` writes the row and its SYSTEMAUDIT "queued" event in one
transaction and hands the id to Celery after commit. A worker claims rows with a
conditional UPDATE and a lease (``outbox_deliver``): a row that is sent is never
claimed again, and a row whose worker died is claimable once its lease is over.
System emails of one tenant are claimed in batches and sent over one reused
connection; each attempt is recorded, transient failures are retried with
exponential backoff and jitter, permanent ones fail at once. ``outbox_sweep``
hands out again what was left queued (a broker outage) or stuck (a dead worker).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import smtplib
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import make_msgid
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from audit.models import Category
from audit.services import EventData, actor_label, audit_events_record_bulk
from smtp.delivery import SmtpConnection, Step, StepFailed, build_message, ehlo_name
from smtp.models import (
    TEST_KINDS,
    Email,
    EmailAttempt,
    EmailKind,
    EmailStatus,
    Level,
    SmtpDraft,
)
from smtp.selectors import SmtpSettings, smtp_config_effective, smtp_settings_of_draft
from tenants.models import Organization, Partner, User

logger = logging.getLogger(__name__)

# Steps that set up the session: if one fails, every email of the batch would
# fail the same way, so the batch stops there.
SESSION_STEPS = frozenset({"resolve", "connect", "tls", "greeting", "ehlo", "auth"})
MAX_RETRY_DELAY = 15 * 60
# Results of a batch are stored every this many emails: a worker that dies
# mid-batch leaves at most this many sent-but-unrecorded emails per thread, the
# only ones that can be sent a second time.
RECORD_EVERY = 10
PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.1,
    "interval_max": 0.2,
}
IDLE_CHECK_AFTER = 5.0
IDLE_CLOSE_AFTER = 60.0

NO_CONFIGURATION_STEP = Step(
    name="configuration",
    status="failed",
    detail="No SMTP configuration is in effect for this tenant.",
    hint="Save a configuration on the SMTP page, or set the controller defaults "
    "(FW_EVENT_SMTP_SERVER_*).",
    field="host",
)


# -- enqueueing ------------------------------------------------------------


@dataclass(frozen=True)
class NewEmail:
    kind: EmailKind
    recipient: str
    subject: str
    body: str
    partner: Partner | None = None
    organization: Organization | None = None
    sender: str = ""
    requested_by: User | None = None
    draft: SmtpDraft | None = None


def _event_scope(email: Email) -> dict[str, int | None]:
    return {"partner_id": email.partner_id, "organization_id": email.organization_id}


def email_enqueue(new: NewEmail) -> Email:
    """Write one email and its "queued" event; publish its id after commit."""
    return emails_enqueue([new])[0]


@transaction.atomic
def emails_enqueue(batch: list[NewEmail]) -> list[Email]:
    """Write emails and their "queued" events in one transaction.

    After commit, one email is handed to the broker by its id, several in tasks
    of up to ``SMTP_BATCH_SIZE`` ids (the worker sends them over one connection).
    """
    now = timezone.now()
    domain = ehlo_name()
    emails = Email.objects.bulk_create(
        [
            Email(
                kind=new.kind,
                partner=new.partner,
                organization=new.organization,
                requested_by=new.requested_by,
                draft=new.draft,
                sender=new.sender,
                recipient=new.recipient,
                subject=new.subject,
                body=new.body,
                message_id=make_msgid(domain=domain),
                next_attempt_at=now,
                # Optimistic: cleared again if the broker cannot take the task.
                enqueued_at=now,
                created_at=now,
            )
            for new in batch
        ]
    )
    audit_events_record_bulk(
        [
            EventData(
                category=Category.SYSTEMAUDIT,
                type="email.queued",
                summary=f"{email.get_kind_display()} to {email.recipient} queued",
                actor=actor_label(new.requested_by),
                **_event_scope(email),
                detail={
                    "email_id": email.pk,
                    "kind": email.kind,
                    "recipient": email.recipient,
                    "message_id": email.message_id,
                },
            )
            for email, new in zip(emails, batch, strict=True)
        ]
    )
    if len(emails) == 1:
        transaction.on_commit(partial(email_publish, emails[0].pk, first=True))
    else:
        size = settings.SMTP_BATCH_SIZE
        for start in range(0, len(emails), size):
            ids = [email.pk for email in emails[start : start + size]]
            transaction.on_commit(partial(emails_publish, ids))
    return emails


def _publish(task, kwargs: dict, email_ids: list[int], countdown: float = 0) -> bool:
    """Hand a task to the broker; on an outage, the emails wait for the sweeper."""
    try:
        task.apply_async(
            kwargs=kwargs,
            countdown=countdown or None,
            queue=settings.CELERY_TASK_DEFAULT_QUEUE,
            # Two quick reconnects (a stale pooled connection), then give up:
            # the row is the truth, and the sweeper hands it out later.
            retry=True,
            retry_policy=PUBLISH_RETRY_POLICY,
        )
    except (BrokerError, OSError) as error:
        logger.warning(
            "Broker unavailable; %s email(s) stay queued until the sweeper hands "
            "them out again: %s",
            len(email_ids),
            error,
        )
        Email.objects.filter(pk__in=email_ids, status=EmailStatus.QUEUED).update(
            enqueued_at=None
        )
        return False
    return True


def emails_publish(email_ids: list[int]) -> bool:
    """Hand several emails to the broker in one task."""
    from smtp.tasks import deliver_emails_task

    return _publish(deliver_emails_task, {"email_ids": email_ids}, email_ids)


def email_publish(email_id: int, *, countdown: float = 0, first: bool = False) -> bool:
    """Hand one email's id to the broker (``countdown``: a retry's delay)."""
    from smtp.tasks import deliver_email_task

    published = _publish(
        deliver_email_task, {"email_id": email_id}, [email_id], countdown
    )
    if published and not first:
        Email.objects.filter(pk=email_id).update(enqueued_at=timezone.now())
    return published


# -- claiming --------------------------------------------------------------


def _claimable(now: datetime) -> Q:
    return Q(status=EmailStatus.QUEUED, next_attempt_at__lte=now) | Q(
        status=EmailStatus.SENDING, lease_until__lt=now
    )


def _claim(email_id: int, *, token: uuid.UUID, now: datetime) -> Email | None:
    lease = now + timedelta(seconds=settings.SMTP_LEASE_SECONDS)
    claimed = (
        Email.objects.filter(pk=email_id)
        .filter(_claimable(now))
        .update(
            status=EmailStatus.SENDING,
            claim_token=token,
            lease_until=lease,
            progress="claimed",
        )
    )
    if not claimed:
        return None
    return Email.objects.select_related(
        "draft", "partner", "organization", "requested_by"
    ).get(pk=email_id)


def _claim_ids(ids: list[int], *, token: uuid.UUID, now: datetime) -> list[Email]:
    """Claim these emails (those still claimable); the rest belong to others."""
    lease = now + timedelta(seconds=settings.SMTP_LEASE_SECONDS)
    Email.objects.filter(pk__in=ids).filter(_claimable(now)).update(
        status=EmailStatus.SENDING,
        claim_token=token,
        lease_until=lease,
        progress="claimed",
    )
    return list(
        Email.objects.filter(pk__in=ids, claim_token=token)
        .select_related("draft", "partner", "organization", "requested_by")
        .order_by("pk")
    )


def _claim_more(
    first: Email, *, token: uuid.UUID, now: datetime, limit: int
) -> list[Email]:
    """Other due system emails of the same tenant, for the same connection."""
    if limit <= 0:
        return []
    lease = now + timedelta(seconds=settings.SMTP_LEASE_SECONDS)
    with transaction.atomic():
        ids = list(
            Email.objects.filter(
                status=EmailStatus.QUEUED,
                next_attempt_at__lte=now,
                partner_id=first.partner_id,
                organization_id=first.organization_id,
                draft__isnull=True,
            )
            .exclude(kind__in=TEST_KINDS)
            .exclude(pk=first.pk)
            .order_by("next_attempt_at", "pk")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:limit]
        )
        if not ids:
            return []
        Email.objects.filter(pk__in=ids, status=EmailStatus.QUEUED).update(
            status=EmailStatus.SENDING,
            claim_token=token,
            lease_until=lease,
            progress="claimed",
        )
    return list(
        Email.objects.filter(pk__in=ids, claim_token=token)
        .select_related("partner", "organization", "requested_by")
        .order_by("next_attempt_at", "pk")
    )


# -- sending ---------------------------------------------------------------


@dataclass
class Result:
    email: Email
    ok: bool
    steps: list[dict]
    started_at: datetime
    duration_ms: int
    settings: SmtpSettings | None
    transient: bool = False
    reply: str = ""
    failed: dict | None = None


def _settings_for(email: Email) -> SmtpSettings | None:
    if email.draft_id is not None:
        return smtp_settings_of_draft(email.draft)
    effective = smtp_config_effective(
        partner=email.partner, organization=email.organization
    )
    return effective.settings


def _message(email: Email, settings_: SmtpSettings):
    return build_message(
        sender=email.sender or settings_.sender_email,
        recipient=email.recipient,
        subject=email.subject,
        body=email.body,
        message_id=email.message_id,
    )


def _failed_dict(steps: list[dict]) -> dict | None:
    return next((s for s in steps if s["status"] == "failed"), None)


class _ConnectionPool(threading.local):
    """Open sessions of this worker thread, by configuration, for reuse."""

    def __init__(self) -> None:
        self.open: dict[str, tuple[SmtpConnection, float]] = {}

    @staticmethod
    def key(settings_: SmtpSettings) -> str:
        password_digest = hashlib.sha256(
            settings_.password.reveal().encode()
        ).hexdigest()
        parts = (
            settings_.level,
            settings_.configuration_id,
            settings_.updated_at,
            settings_.host,
            settings_.port,
            settings_.security,
            settings_.use_insecure,
            settings_.username,
            password_digest,
        )
        return "|".join(str(part) for part in parts)

    def get(self, settings_: SmtpSettings) -> tuple[SmtpConnection, bool]:
        """A session ready for a transaction, and whether it was reused."""
        self.close_idle()
        key = self.key(settings_)
        entry = self.open.get(key)
        now = time.monotonic()
        if entry is not None:
            connection, last_used = entry
            if now - last_used < IDLE_CHECK_AFTER or connection.alive():
                self.open[key] = (connection, now)
                connection.steps = []
                return connection, True
            self.discard(settings_)
        connection = SmtpConnection(settings_)
        try:
            connection.open()
        except StepFailed:
            connection.close()
            raise
        self.open[key] = (connection, now)
        return connection, False

    def touch(self, settings_: SmtpSettings) -> None:
        key = self.key(settings_)
        if key in self.open:
            self.open[key] = (self.open[key][0], time.monotonic())

    def reset_or_discard(self, settings_: SmtpSettings) -> None:
        """After a refused transaction: RSET to keep the session, else drop it."""
        entry = self.open.get(self.key(settings_))
        if entry is not None:
            try:
                if entry[0].client is not None and entry[0].client.rset()[0] == 250:
                    return
            except (OSError, smtplib.SMTPException):
                pass
        self.discard(settings_)

    def discard(self, settings_: SmtpSettings) -> None:
        entry = self.open.pop(self.key(settings_), None)
        if entry is not None:
            entry[0].close()

    def close_idle(self) -> None:
        now = time.monotonic()
        for key, (connection, last_used) in list(self.open.items()):
            if now - last_used > IDLE_CLOSE_AFTER:
                connection.close()
                del self.open[key]

    def close_all(self) -> None:
        for connection, _ in self.open.values():
            connection.close()
        self.open.clear()


_pool = _ConnectionPool()


def close_pooled_connections() -> None:
    """Close this thread's pooled SMTP sessions (worker shutdown)."""
    _pool.close_all()


def _send_on_pooled(email: Email, settings_: SmtpSettings) -> Result:
    """Send one email over this thread's session for its settings."""
    started_at = timezone.now()
    clock = time.monotonic()
    sender = email.sender or settings_.sender_email

    def result(ok: bool, steps: list[Step], **values) -> Result:
        dicts = [s.as_dict() for s in steps]
        return Result(
            email=email,
            ok=ok,
            steps=dicts,
            started_at=started_at,
            duration_ms=int((time.monotonic() - clock) * 1000),
            settings=settings_,
            failed=_failed_dict(dicts),
            **values,
        )

    for on_fresh_session in (False, True):
        reused = False
        try:
            connection, reused = _pool.get(settings_)
            reply = connection.send(
                _message(email, settings_), sender=sender, recipients=[email.recipient]
            )
        except StepFailed as failure:
            in_session = failure.step.name in SESSION_STEPS
            if reused and failure.transient and not on_fresh_session:
                # The server closed the reused session meanwhile: once more on a
                # fresh one; not an attempt of the email's own.
                _pool.discard(settings_)
                continue
            if in_session or failure.transient:
                _pool.discard(settings_)
            else:
                _pool.reset_or_discard(settings_)
            return result(False, failure.steps, transient=failure.transient)
        _pool.touch(settings_)
        return result(True, connection.steps, reply=reply)
    raise AssertionError("unreachable")  # pragma: no cover


def _no_configuration(email: Email) -> Result:
    return Result(
        email=email,
        ok=False,
        steps=[NO_CONFIGURATION_STEP.as_dict()],
        started_at=timezone.now(),
        duration_ms=0,
        settings=None,
        failed=NO_CONFIGURATION_STEP.as_dict(),
    )


def _deliver_batch(batch: list[Email], *, token: uuid.UUID) -> None:
    first = batch[0]
    settings_ = _settings_for(first)
    if settings_ is None:
        _record([_no_configuration(email) for email in batch], token=token)
        return
    deadline = time.monotonic() + settings.SMTP_LEASE_SECONDS / 2
    results: list[Result] = []
    for index, email in enumerate(batch):
        if len(results) >= RECORD_EVERY:
            _record(results, token=token)
            results = []
        if time.monotonic() > deadline:
            # Stay well inside the lease: give the rest back rather than risk
            # another worker sending them too.
            Email.objects.filter(
                pk__in=[e.pk for e in batch[index:]], claim_token=token
            ).update(
                status=EmailStatus.QUEUED,
                claim_token=None,
                lease_until=None,
                progress="",
            )
            break
        result = _send_on_pooled(email, settings_)
        results.append(result)
        if not result.ok and result.failed and result.failed["name"] in SESSION_STEPS:
            # The session itself cannot be opened: the rest would fail alike.
            for rest in batch[index + 1 :]:
                results.append(
                    Result(
                        email=rest,
                        ok=False,
                        steps=result.steps,
                        started_at=result.started_at,
                        duration_ms=0,
                        settings=settings_,
                        transient=result.transient,
                        failed=result.failed,
                    )
                )
            break
    _record(results, token=token)


def _deliver_test(email: Email, *, token: uuid.UUID) -> None:
    """A test email: its own session, progress written live, tried once."""
    settings_ = _settings_for(email)
    if settings_ is None:
        _record([_no_configuration(email)], token=token)
        return
    seen: list[Step] = []

    def on_step(step: Step) -> None:
        if not any(s is step for s in seen):
            seen.append(step)
        Email.objects.filter(pk=email.pk, claim_token=token).update(
            progress=step.name, steps=[s.as_dict() for s in seen]
        )

    started_at = timezone.now()
    clock = time.monotonic()
    connection = SmtpConnection(settings_, on_step=on_step)
    reply = ""
    failure: StepFailed | None = None
    try:
        connection.open()
        sender = email.sender or settings_.sender_email
        if email.kind == EmailKind.VERIFY:
            connection.verify(sender=sender, recipient=email.recipient)
        else:
            reply = connection.send(
                _message(email, settings_), sender=sender, recipients=[email.recipient]
            )
    except StepFailed as failed:
        failure = failed
    finally:
        connection.close()
    steps = [s.as_dict() for s in connection.steps]
    _record(
        [
            Result(
                email=email,
                ok=failure is None,
                steps=steps,
                started_at=started_at,
                duration_ms=int((time.monotonic() - clock) * 1000),
                settings=settings_,
                transient=bool(failure and failure.transient),
                reply=reply,
                failed=_failed_dict(steps),
            )
        ],
        token=token,
    )


def outbox_deliver(*, email_id: int) -> None:
    """Claim an email (and, for system emails, a batch of its tenant's) and send."""
    token = uuid.uuid4()
    now = timezone.now()
    email = _claim(email_id, token=token, now=now)
    if email is None:
        return
    if email.is_test or email.draft_id is not None:
        _deliver_test(email, token=token)
        return
    more = _claim_more(email, token=token, now=now, limit=settings.SMTP_BATCH_SIZE - 1)
    _deliver_batch([email, *more], token=token)


def outbox_deliver_many(*, email_ids: list[int]) -> None:
    """Claim these emails and send them, one connection per configuration."""
    token = uuid.uuid4()
    claimed = _claim_ids(email_ids, token=token, now=timezone.now())
    groups: dict[tuple, list[Email]] = {}
    for email in claimed:
        if email.is_test or email.draft_id is not None:
            _deliver_test(email, token=token)
        else:
            groups.setdefault((email.partner_id, email.organization_id), []).append(
                email
            )
    for batch in groups.values():
        _deliver_batch(batch, token=token)


# -- recording -------------------------------------------------------------


def retry_delay(attempt: int) -> float:
    """Seconds before retry ``attempt`` + 1: exponential, with jitter."""
    delay = min(MAX_RETRY_DELAY, settings.SMTP_RETRY_BASE_SECONDS * 2 ** (attempt - 1))
    return delay * secrets.SystemRandom().uniform(0.5, 1.0)


@dataclass
class _Recorded:
    emails: list[Email] = field(default_factory=list)
    attempts: list[EmailAttempt] = field(default_factory=list)
    events: list[EventData] = field(default_factory=list)
    retries: list[tuple[int, float]] = field(default_factory=list)
    drafts: list[int] = field(default_factory=list)


RECORDED_FIELDS = [
    "status",
    "attempts",
    "steps",
    "progress",
    "lease_until",
    "claim_token",
    "level_used",
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


def _apply_result(result: Result, now: datetime, out: _Recorded) -> None:
    email = result.email
    settings_ = result.settings
    number = email.attempts + 1
    max_attempts = 1 if email.is_test or settings_ is None else settings_.retries + 1
    failed = result.failed or {}
    level = settings_.level if settings_ else Level.NONE
    server = f"{settings_.host}:{settings_.port}" if settings_ else ""
    out.attempts.append(
        EmailAttempt(
            email=email,
            number=number,
            started_at=result.started_at,
            duration_ms=result.duration_ms,
            ok=result.ok,
            transient=result.transient,
            level=level,
            server=server,
            failed_step=failed.get("name", ""),
            reply_code=failed.get("reply_code"),
            error=failed.get("detail", ""),
            steps=result.steps,
        )
    )
    email.attempts = number
    email.steps = result.steps
    email.progress = ""
    email.lease_until = None
    email.claim_token = None
    email.level_used = level
    email.server = server
    email.failed_step = failed.get("name", "")
    email.reply_code = failed.get("reply_code")
    email.last_error = failed.get("detail", "")
    email.hint = failed.get("hint", "")
    email.error_field = failed.get("field", "")
    base = {
        "email_id": email.pk,
        "kind": email.kind,
        "recipient": email.recipient,
        "message_id": email.message_id,
        "level": level,
        "server": server,
        "attempt": number,
        "steps": result.steps,
    }
    label = email.get_kind_display()
    if result.ok:
        email.status = EmailStatus.SENT
        email.sent_at = email.finished_at = now
        verb = "verified (nothing sent)" if email.kind == EmailKind.VERIFY else "sent"
        summary = f"{label} to {email.recipient} {verb} via {level} SMTP {server}"
        detail = {**base, "reply": result.reply, "duration_ms": result.duration_ms}
        event_type = "email.sent"
    else:
        problem = {
            "step": failed.get("name", ""),
            "reply_code": failed.get("reply_code"),
            "reason": failed.get("detail", ""),
            "hint": failed.get("hint", ""),
        }
        if result.transient and number < max_attempts:
            delay = retry_delay(number)
            email.status = EmailStatus.QUEUED
            email.next_attempt_at = now + timedelta(seconds=delay)
            out.retries.append((email.pk, delay))
            event_type = "email.deferred"
            summary = (
                f"{label} to {email.recipient} deferred at {problem['step']}; "
                f"retry {number} of {max_attempts - 1} in {delay:.0f} s"
            )
            detail = {
                **base,
                **problem,
                "next_attempt_at": email.next_attempt_at.isoformat(),
            }
        else:
            email.status = EmailStatus.FAILED
            email.finished_at = now
            event_type = "email.failed"
            summary = f"{label} to {email.recipient} failed at {problem['step']}"
            detail = {**base, **problem, "final": True}
    if email.is_final and email.draft_id is not None:
        out.drafts.append(email.draft_id)
    out.emails.append(email)
    out.events.append(
        EventData(
            category=Category.SYSTEMAUDIT,
            type=event_type,
            summary=summary,
            **_event_scope(email),
            detail=detail,
        )
    )


def _record(results: list[Result], *, token: uuid.UUID) -> None:
    """Store the outcome of every result, in one transaction; schedule retries."""
    if not results:
        return
    now = timezone.now()
    recorded = _Recorded()
    with transaction.atomic():
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
        for email_id, delay in recorded.retries:
            transaction.on_commit(partial(email_publish, email_id, countdown=delay))


def _store_rows(emails: list[Email], now: datetime) -> None:
    """Write the recorded fields: one UPDATE for every system email that was sent
    through the same server, one per row for the rest (tests, failures).

    A sent system email keeps its steps in its attempt, not on its row.
    """
    sent: dict[tuple[str, str], list[int]] = {}
    for email in emails:
        if email.status == EmailStatus.SENT and not email.is_test:
            sent.setdefault((email.level_used, email.server), []).append(email.pk)
        else:
            Email.objects.filter(pk=email.pk).update(
                **{name: getattr(email, name) for name in RECORDED_FIELDS}
            )
    for (level, server), ids in sent.items():
        Email.objects.filter(pk__in=ids).update(
            status=EmailStatus.SENT,
            attempts=F("attempts") + 1,
            steps=[],
            progress="",
            lease_until=None,
            claim_token=None,
            level_used=level,
            server=server,
            failed_step="",
            reply_code=None,
            last_error="",
            hint="",
            error_field="",
            sent_at=now,
            finished_at=now,
        )


# -- sweeping --------------------------------------------------------------


def outbox_sweep(*, limit: int = 500) -> int:
    """Hand out again emails left queued (broker outage) or stuck past their lease."""
    now = timezone.now()
    grace = now - timedelta(seconds=settings.SMTP_REQUEUE_AFTER_SECONDS)
    never_published = Q(
        status=EmailStatus.QUEUED, enqueued_at__isnull=True, next_attempt_at__lte=now
    )
    waiting_too_long = Q(
        status=EmailStatus.QUEUED, next_attempt_at__lte=grace, enqueued_at__lte=grace
    )
    lease_expired = Q(status=EmailStatus.SENDING, lease_until__lt=now) & (
        Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=F("lease_until"))
    )
    ids = list(
        Email.objects.filter(never_published | waiting_too_long | lease_expired)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    published = 0
    for email_id in ids:
        if not email_publish(email_id):
            break  # the broker is down; try again at the next sweep
        published += 1
    if published:
        logger.info("Outbox sweep handed out %s email(s) again.", published)
    return published
