"""Sending claimed emails: batches over pooled sessions, tests on their own."""

from __future__ import annotations

import time
import uuid

from django.conf import settings
from django.utils import timezone

from smtp.delivery import Step, StepFailed, build_message, deliver
from smtp.models import (
    Email,
    EmailKind,
    EmailStatus,
)
from smtp.outbox.claims import claim_ids, claim_more, claim_one
from smtp.outbox.pool import pool
from smtp.outbox.recording import Result, record_results
from smtp.selectors import SmtpSettings, smtp_config_effective, smtp_settings_of_draft

# Steps that set up the session: if one fails, every email of the batch would
# fail the same way, so the batch stops there.
SESSION_STEPS = frozenset({"resolve", "connect", "tls", "greeting", "ehlo", "auth"})
# Results of a batch are stored every this many emails: a worker that dies
# mid-batch leaves at most this many sent-but-unrecorded emails per thread, the
# only ones that can be sent a second time.
RECORD_EVERY = 10
NO_CONFIGURATION_STEP = Step(
    name="configuration",
    status="failed",
    detail="No SMTP configuration is in effect for this tenant.",
    hint="Save a configuration on the SMTP page, or set the controller defaults "
    "(FW_EVENT_SMTP_SERVER_*).",
    field="host",
)


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


def _send_on_pooled(email: Email, settings_: SmtpSettings) -> Result:
    """Send one email over this thread's session for its settings."""
    started_at = timezone.now()
    clock = time.monotonic()
    sender = email.sender or settings_.sender_email

    def result(ok: bool, steps: list[Step], **values) -> Result:
        return Result(
            email=email,
            ok=ok,
            steps=[s.as_dict() for s in steps],
            started_at=started_at,
            duration_ms=int((time.monotonic() - clock) * 1000),
            settings=settings_,
            **values,
        )

    for on_fresh_session in (False, True):
        reused = False
        try:
            connection, reused = pool.get(settings_)
            reply = connection.send(
                _message(email, settings_), sender=sender, recipients=[email.recipient]
            )
        except StepFailed as failure:
            in_session = failure.step.name in SESSION_STEPS
            if reused and failure.transient and not on_fresh_session:
                # The server closed the reused session meanwhile: once more on a
                # fresh one; not an attempt of the email's own.
                pool.discard(settings_)
                continue
            if in_session or failure.transient:
                pool.discard(settings_)
            else:
                pool.reset_or_discard(settings_)
            return result(False, failure.steps, transient=failure.transient)
        pool.touch(settings_)
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
    )


def _deliver_batch(batch: list[Email], *, token: uuid.UUID) -> None:
    first = batch[0]
    settings_ = _settings_for(first)
    if settings_ is None:
        record_results([_no_configuration(email) for email in batch], token=token)
        return
    deadline = time.monotonic() + settings.SMTP_LEASE_SECONDS / 2
    results: list[Result] = []
    for index, email in enumerate(batch):
        if len(results) >= RECORD_EVERY:
            record_results(results, token=token)
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
                    )
                )
            break
    record_results(results, token=token)


def _deliver_test(email: Email, *, token: uuid.UUID) -> None:
    """A test email: its own session, progress written live, tried once."""
    settings_ = _settings_for(email)
    if settings_ is None:
        record_results([_no_configuration(email)], token=token)
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
    verify_only = email.kind == EmailKind.VERIFY
    outcome = deliver(
        settings_,
        None if verify_only else _message(email, settings_),
        sender=email.sender or settings_.sender_email,
        recipients=[email.recipient],
        verify_only=verify_only,
        on_step=on_step,
    )
    record_results(
        [
            Result(
                email=email,
                ok=outcome.ok,
                steps=[s.as_dict() for s in outcome.steps],
                started_at=started_at,
                duration_ms=int((time.monotonic() - clock) * 1000),
                settings=settings_,
                transient=outcome.transient,
                reply=outcome.reply,
            )
        ],
        token=token,
    )


def outbox_deliver(*, email_id: int) -> None:
    """Claim an email (and, for system emails, a batch of its tenant's) and send."""
    token = uuid.uuid4()
    now = timezone.now()
    email = claim_one(email_id, token=token, now=now)
    if email is None:
        return
    if email.is_test or email.draft_id is not None:
        _deliver_test(email, token=token)
        return
    more = claim_more(email, token=token, now=now, limit=settings.SMTP_BATCH_SIZE - 1)
    _deliver_batch([email, *more], token=token)


def outbox_deliver_many(*, email_ids: list[int]) -> None:
    """Claim these emails and send them, one connection per configuration."""
    token = uuid.uuid4()
    claimed = claim_ids(email_ids, token=token, now=timezone.now())
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
