"""Sending claimed emails: batches over pooled sessions, tests on their own."""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
import uuid
from collections.abc import Callable

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from smtp.delivery import Step, StepFailed, build_message, deliver
from smtp.delivery.hints import THROTTLED, THROTTLING_HINT, throttling
from smtp.delivery.server import SmtpServer
from smtp.models import (
    Email,
    EmailKind,
    EmailStatus,
)
from smtp.outbox import limits
from smtp.outbox.claims import claim_ids, claim_more, claim_one, claim_turn
from smtp.outbox.delays import record_delayed
from smtp.outbox.failover import Route, route_for
from smtp.outbox.pool import pool
from smtp.outbox.recording import (
    Result,
    commits_not_waiting_for_disk,
    record_accepted,
    record_results,
)
from smtp.outbox.turns import bulk_of_tenant, turn_done, turn_request
from smtp.selectors import smtp_config_effective, smtp_server_of_draft

logger = logging.getLogger(__name__)

# Steps that set up the session: if one fails, every email of the batch would
# fail the same way, so the batch stops there.
SESSION_STEPS = frozenset(
    {"token", "resolve", "connect", "tls", "greeting", "ehlo", "auth"}
)
# Rows and events of accepted emails are written every this many emails, or
# this many seconds (the attempt of each is written at once: see
# ``_deliver_batch``).
RECORD_EVERY = 50
RECORD_WITHIN = 1.0
NO_CONFIGURATION_STEP = Step(
    name="configuration",
    status="failed",
    detail="No SMTP configuration is in effect for this tenant.",
    hint="Save a configuration on the SMTP page, or set the controller defaults "
    "(FW_EVENT_SMTP_SERVER_*).",
    field="host",
)


def _internal_step(error: BaseException, *, during: str) -> Step:
    """A failed step for an exception outside the SMTP session (never a crash)."""
    kind = type(error).__name__
    logger.error("Unexpected %s while %s.", kind, during, exc_info=error)
    return Step(
        name="internal",
        status="failed",
        detail=f"Delivery stopped with an unexpected error ({kind}) while {during}.",
        hint="This is a fault of the console, not of your settings; it is logged "
        "for the operator.",
    )


def _give_back(emails: list[Email], *, token: uuid.UUID) -> None:
    """Return claimed, untried emails to the queue for another worker."""
    if emails:
        Email.objects.filter(pk__in=[e.pk for e in emails], claim_token=token).update(
            status=EmailStatus.QUEUED, claim_token=None, lease_until=None, progress=""
        )


def _server_for(email: Email) -> SmtpServer | None:
    if email.draft_id is not None:
        return smtp_server_of_draft(email.draft)
    effective = smtp_config_effective(
        partner=email.partner, organization=email.organization
    )
    return effective.settings


def _send_routed(email: Email, route: Route) -> Result:
    """Send one email with the route's configuration, failing over to the next
    one (for it and the rest of the batch) while a session cannot be opened."""
    while True:
        result = _send_within_limits(email, route.server)
        if not route.fail_over(result):
            return route.mark(result)


def _message(email: Email, server: SmtpServer):
    return build_message(
        sender=email.sender or server.sender_email,
        recipient=email.recipient,
        subject=email.subject,
        body=email.body,
        message_id=email.message_id,
        sender_name=server.sender_name,
        reply_to=server.reply_to,
        html=email.html_body or "",
        language=settings.LANGUAGE_CODE,
    )


def _closed_before_reply(failure: StepFailed) -> bool:
    """The server had closed the session before answering this transaction: it
    hung up, or said 421 (closing), at MAIL FROM."""
    step = failure.step
    return step.name == "mail_from" and (failure.closed or step.reply_code == 421)


def _reconnect_step(failure: StepFailed) -> Step:
    step = failure.step
    return Step(
        name="reconnect",
        status="ok",
        reply_code=step.reply_code,
        reply=step.reply,
        detail="The server had closed the reused connection (at MAIL FROM: "
        f"{step.detail}); a new connection was opened.",
    )


def _send_on_pooled(email: Email, server: SmtpServer) -> Result:
    """Send one email over this thread's session for its settings: one attempt,
    whatever the server answers."""
    started_at = timezone.now()
    clock = time.monotonic()
    # MAIL FROM: the bounce address when there is one, else the From address.
    sender = server.envelope_sender(email.sender)
    before: list[Step] = []

    def result(ok: bool, steps: list[Step], **values) -> Result:
        return Result.timed(
            email,
            server,
            [*before, *steps],
            ok=ok,
            started_at=started_at,
            clock=clock,
            **values,
        )

    try:
        message = _message(email, server)
    except Exception as error:
        # The same email would fail the same way again.
        step = _internal_step(error, during="writing the message")
        step.name = "message"
        return Result.failure(email, [step.as_dict()], server, transient=False)
    for on_fresh_session in (False, True):
        reused = False
        try:
            connection, reused = pool.get(server)
            reply = connection.send(
                message, sender=sender, recipients=[email.recipient]
            )
        except StepFailed as failure:
            if isinstance(failure.cause, SoftTimeLimitExceeded):
                pool.discard(server)
                step = failure.step
                step.detail = (
                    f"The task's time limit stopped the session during {step.name}."
                )
                step.hint = "The server is too slow right now; it is retried."
                return result(False, failure.steps, transient=True, interrupted=True)
            if reused and not on_fresh_session and _closed_before_reply(failure):
                # An idle session the server ended meanwhile: it never saw this
                # email, so once more on a fresh session, as the same attempt.
                pool.discard(server)
                before.append(_reconnect_step(failure))
                continue
            step = failure.step
            lost = failure.transient and step.reply_code is None
            if step.name in SESSION_STEPS or step.reply_code == 421 or lost:
                # Not a refusal on a working session: a lost, timed-out or
                # closing one.
                pool.discard(server)
            else:
                # A refusal, or an address refused before it was sent: RSET
                # keeps the session.
                pool.reset_or_discard(server)
            return result(False, failure.steps, transient=failure.transient)
        pool.touch(server)
        return result(True, connection.steps, reply=reply)
    raise AssertionError("unreachable")  # pragma: no cover


def _throttled(result: Result, server: SmtpServer) -> bool:
    """Whether the server refused ``result`` because it is throttling this
    client; if so, the configuration is paused for every worker and the result
    says how long its email waits (without using a retry)."""
    failed = result.failed
    if result.ok or result.interrupted or failed is None:
        return False
    if not throttling(failed.get("reply_code"), failed.get("reply") or ""):
        return False
    failed["hint"] = THROTTLING_HINT
    failed["hint_code"] = THROTTLED
    result.throttled = True
    result.transient = True
    result.defer_for = _spread(limits.throttle_pause(server))
    # Whatever the reply left of the session, the next try starts afresh.
    pool.discard(server)
    return True


def _spread(delay: float) -> float:
    """A delay with a little jitter, so that held emails do not all come back
    at the same instant."""
    return delay * secrets.SystemRandom().uniform(1.0, 1.1) + 0.05


def _send_within_limits(email: Email, server: SmtpServer) -> Result:
    """``_send_on_pooled`` once the configuration's limits, shared by every
    worker, give this email its turn; raises ``limits.LimitReached`` if they
    hold it for longer than a worker waits."""
    turn = limits.message_turn(server)
    if not turn.admitted:
        raise limits.LimitReached(turn.wait, reason=turn.reason)
    reached = True
    try:
        return _send_on_pooled(email, server)
    except limits.LimitReached:
        # No session to send it on: its turn goes to another email.
        reached = False
        raise
    finally:
        if reached:
            limits.message_sent(server, turn.token)
        else:
            limits.message_unused(server, turn.token)


def _hold(
    pending: list[Result],
    emails: list[Email],
    first_wait: float,
    *,
    reason: str,
    server: SmtpServer,
    token: uuid.UUID,
) -> None:
    """Record the batch's results so far, and put these untried emails back for
    later: the configuration's limits hold them, not a failure (no attempt, no
    retry used)."""
    record_results(pending, token=token)
    per_window = server.messages_per_minute if reason == "rate" else 0
    delays = limits.turns(first_wait, len(emails), per_window=per_window)
    record_delayed(
        emails,
        [_spread(delay) for delay in delays],
        token=token,
        reason=reason,
        server=server,
    )


def _no_configuration(email: Email) -> Result:
    return Result.failure(
        email, [NO_CONFIGURATION_STEP.as_dict()], None, transient=False
    )


def _deliver_batch(
    batch: list[Email],
    *,
    token: uuid.UUID,
    all_sent: Callable[[], None] | None = None,
) -> None:
    """Send a batch over one pooled session; every email ends with a result or
    back in the queue, whatever is raised (a time limit included).

    The attempt of an email the server accepted is written before the next one
    is sent, so a worker that stops leaves at most one accepted email without a
    trace (sent again by the next worker). Rows and events follow every
    ``RECORD_EVERY`` emails or ``RECORD_WITHIN`` seconds, and at once for a
    refused one. ``all_sent`` is called once every email of the batch has its
    result and the session is released, before the last results are recorded
    (a turn hands over to the next one then).
    """
    # Stay well inside the lease and the task's time limit: emails not started
    # by then go back to the queue rather than risk another worker sending
    # them too.
    give_back_at = time.monotonic() + settings.SMTP_BATCH_SECONDS
    recorded_at = time.monotonic()
    done = 0  # emails of the batch with a result, recorded or pending
    pending: list[Result] = []  # results not recorded yet
    server: SmtpServer | None = None
    try:
        # Those attempts do not wait for the disk flush; see recording.
        with commits_not_waiting_for_disk():
            route = route_for(batch[0], until=give_back_at)
            server = route.server
            if server is None:
                pending = [_no_configuration(email) for email in batch]
                done = len(batch)
            for index, email in enumerate(batch[done:], start=done):
                if time.monotonic() > give_back_at:
                    break
                try:
                    result = _send_routed(email, route)
                except limits.LimitReached as held:
                    # Over a limit: the rest of the batch goes back, kept whole.
                    _hold(
                        pending,
                        batch[index:],
                        held.wait,
                        reason=held.reason,
                        server=route.server,
                        token=token,
                    )
                    pending, done = [], len(batch)
                    break
                server = route.server
                pending.append(result)
                done = index + 1
                if result.ok:
                    record_accepted(result)
                if _throttled(result, server):
                    # The server asks to slow down: this email waits without
                    # using a retry, the rest of the batch with it.
                    _hold(
                        pending,
                        batch[done:],
                        result.defer_for,
                        reason="paused",
                        server=server,
                        token=token,
                    )
                    pending, done = [], len(batch)
                    break
                failed = result.failed
                if (
                    not result.ok
                    and not result.interrupted
                    and failed
                    and failed["name"] in SESSION_STEPS
                ):
                    # The session itself cannot be opened: the rest would fail alike.
                    pending += [route.alike(other, result) for other in batch[done:]]
                    done = len(batch)
                if (
                    not result.ok
                    or len(pending) >= RECORD_EVERY
                    or time.monotonic() - recorded_at > RECORD_WITHIN
                ):
                    record_results(pending, token=token)
                    pending = []
                    recorded_at = time.monotonic()
                if result.interrupted or done == len(batch):
                    break
            if all_sent is not None and done == len(batch):
                if server is not None:
                    pool.release(server)
                _call_quietly(all_sent)
            record_results(pending, token=token)
    except SoftTimeLimitExceeded:
        logger.warning("Time limit reached; untried emails go back to the queue.")
        record_results(pending, token=token)
    except DatabaseError:
        # Nothing more is sent that could not be recorded. Accepted emails whose
        # attempt was written get the rest from the sweeper; the one whose
        # attempt was lost, if any, stays claimed and is handed out again when
        # its lease runs out.
        logger.exception("Could not record a result; the batch stops here.")
        with contextlib.suppress(DatabaseError):
            _give_back(batch[done:], token=token)
        return
    except Exception as error:
        step = _internal_step(error, during="sending a batch")
        record_results(
            [
                *pending,
                *(
                    Result.failure(email, [step.as_dict()], server, transient=True)
                    for email in batch[done:]
                ),
            ],
            token=token,
        )
        return
    finally:
        if server is not None:
            # An idle session of a configuration with a connection limit would
            # hold a slot that other workers could use.
            with contextlib.suppress(Exception):
                pool.release(server)
    _give_back(batch[done:], token=token)


def _call_quietly(call: Callable[[], None]) -> None:
    """``call``, whose failure must not cost the batch its recording (it is
    logged; the caller tries again later)."""
    try:
        call()
    except Exception:
        logger.exception("Could not hand over to the next turn; tried again later.")


def _deliver_test(email: Email, *, token: uuid.UUID) -> None:
    """A test email: its own session, progress written live, tried once."""
    try:
        _deliver_test_session(email, token=token)
    except SoftTimeLimitExceeded:
        _give_back([email], token=token)
    except Exception as error:
        step = _internal_step(error, during="sending a test email")
        record_results(
            [Result.failure(email, [step.as_dict()], None, transient=False)],
            token=token,
        )


def _deliver_test_session(email: Email, *, token: uuid.UUID) -> None:
    server = _server_for(email)
    if server is None:
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
    # A person waits for it: never held, but a saved configuration's limits
    # count it (an unsaved draft's count against nothing; a verification sends
    # no message).
    with limits.counted(
        server if email.draft_id is None else None, message=not verify_only
    ):
        outcome = deliver(
            server,
            None if verify_only else _message(email, server),
            sender=server.envelope_sender(email.sender),
            recipients=[email.recipient],
            verify_only=verify_only,
            on_step=on_step,
        )
    record_results(
        [
            Result.timed(
                email,
                server,
                outcome.steps,
                ok=outcome.ok,
                started_at=started_at,
                clock=clock,
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
    if email.rehands:
        # Its worker stopped while it was claimed: on its own (see claims).
        _deliver_batch([email], token=token)
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
        elif email.rehands:
            groups[("alone", email.pk)] = [email]
        else:
            groups.setdefault((email.partner_id, email.organization_id), []).append(
                email
            )
    for batch in groups.values():
        _deliver_batch(batch, token=token)


def outbox_deliver_turn(
    *, partner_id: int | None, organization_id: int | None, place: str = "-"
) -> None:
    """One turn of a tenant in the bulk lane (see ``smtp.outbox.turns``): claim a
    batch of its due bulk emails and send it; the next turn queues behind every
    other tenant's."""
    token = uuid.uuid4()
    handed_over = False

    def hand_over() -> None:
        # Once: when every email of the batch has its result (the next turn
        # starts while this one records them), or else at the end.
        nonlocal handed_over
        if not handed_over:
            turn_done(partner_id, organization_id, place=place)
            handed_over = True

    try:
        batch, more = claim_turn(
            bulk_of_tenant(partner_id, organization_id),
            token=token,
            now=timezone.now(),
            limit=settings.SMTP_BATCH_SIZE,
        )
        if batch and more:
            # More than one batch waits: another place, if the tenant has one,
            # so that a second connection can take the next batch meanwhile.
            turn_request(partner_id, organization_id)
        if batch:
            _deliver_batch(batch, token=token, all_sent=hand_over)
    finally:
        hand_over()
