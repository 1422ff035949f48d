"""Handing out again what was left queued or stuck.

Every email whose lease ran out goes back to the queue, whatever happened to the
messages published for it: the row is the truth, so a lost broker message never
strands it. An email held by a worker that stopped counts that stop; after
``SMTP_MAX_REHANDS`` of them without a recorded attempt it fails (step "lease")
instead of taking down one worker after another (the emails of a batch all
count the stop, and are then sent on their own: see claims). An email the server
accepted whose worker stopped before recording it is not sent again: its
attempt was written at once, and the sweeper records the rest from it. A
queued email is published again at most once per ``SMTP_REQUEUE_AFTER_SECONDS``.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from smtp.delivery import Step
from smtp.models import (
    Email,
    EmailAttempt,
    EmailStatus,
)
from smtp.outbox.publish import email_publish
from smtp.outbox.recording import (
    Result,
    record_results,
    sent_unrecorded,
)

logger = logging.getLogger(__name__)

BACK_IN_THE_QUEUE = {
    "status": EmailStatus.QUEUED,
    "claim_token": None,
    "lease_until": None,
    "progress": "",
    # Not published since: handed out by this sweep.
    "enqueued_at": None,
}


def outbox_sweep(*, limit: int = 500) -> int:
    """Put emails back whose lease ran out, and hand out again emails left queued
    (a broker outage, a lost message); returns how many were published."""
    now = timezone.now()
    leases_recover(now=now, limit=limit)
    grace = now - timedelta(seconds=settings.SMTP_REQUEUE_AFTER_SECONDS)
    never_published = Q(
        status=EmailStatus.QUEUED, enqueued_at__isnull=True, next_attempt_at__lte=now
    )
    waiting_too_long = Q(
        status=EmailStatus.QUEUED, next_attempt_at__lte=grace, enqueued_at__lte=grace
    )
    due = list(
        Email.objects.filter(never_published | waiting_too_long)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", "kind")[:limit]
    )
    published = 0
    for email_id, kind in due:
        if not email_publish(email_id, kind=kind):
            break  # the broker is down; try again at the next sweep
        published += 1
    if published:
        logger.info("Outbox sweep handed out %s email(s) again.", published)
    return published


def leases_recover(*, now: datetime, limit: int = 500) -> None:
    """Every email whose lease ran out goes back to the queue or, if its worker
    stopped too often while holding it, fails; one the server accepted gets its
    attempt and event."""
    token = uuid.uuid4()
    most = settings.SMTP_MAX_REHANDS
    with transaction.atomic():
        # SKIP LOCKED: every worker sweeps; each row is recovered by one of them.
        expired = list(
            Email.objects.filter(status=EmailStatus.SENDING, lease_until__lt=now)
            .order_by("lease_until", "pk")
            .select_for_update(skip_locked=True)
            .values_list("pk", "attempts", "deferrals", "rehands")[:limit]
        )
        # Accepted by the server, attempt written, row not recorded yet: its
        # number follows every attempt and deferral recorded (attempt_number).
        accepted = set(
            EmailAttempt.objects.filter(
                email_id__in=[pk for pk, _, _, _ in expired], ok=True
            ).values_list("email_id", "number")
        )
        sent = [pk for pk, n, d, _ in expired if (pk, n + d + 1) in accepted]
        stopped = [pk for pk, _, _, _ in expired if pk not in sent]
        exhausted = [pk for pk, _, _, n in expired if pk in stopped and n >= most]
        Email.objects.filter(pk__in=set(stopped) - set(exhausted)).update(
            **BACK_IN_THE_QUEUE, rehands=F("rehands") + 1
        )
        # The sweeper's own claim, to record these like any attempt.
        Email.objects.filter(pk__in=[*sent, *exhausted]).update(
            claim_token=token,
            lease_until=now + timedelta(seconds=settings.SMTP_LEASE_SECONDS),
        )
    if len(stopped) > len(exhausted):
        logger.warning(
            "%s email(s) were held by a worker that stopped; handed out again.",
            len(stopped) - len(exhausted),
        )
    if sent or exhausted:
        _record_stopped(sent, exhausted, token=token, now=now)


def _record_stopped(
    sent: list[int], exhausted: list[int], *, token: uuid.UUID, now: datetime
) -> None:
    emails = list(
        Email.objects.filter(pk__in=[*sent, *exhausted], claim_token=token)
        .select_related("partner", "organization", "requested_by")
        .order_by("pk")
    )
    attempts = {
        attempt.email_id: attempt
        for attempt in EmailAttempt.objects.filter(email_id__in=sent, ok=True)
    }
    if exhausted:
        logger.error(
            "%s email(s) failed at step lease: their worker kept stopping while "
            "sending them.",
            len(exhausted),
        )
    record_results(
        [
            sent_unrecorded(email, attempts[email.pk])
            if email.pk in attempts
            else Result.failure(
                email,
                [_lease_step(email.rehands + 1).as_dict()],
                None,
                transient=False,
            )
            for email in emails
        ],
        token=token,
    )


def _lease_step(stops: int) -> Step:
    return Step(
        name="lease",
        status="failed",
        detail=f"The worker sending this email stopped {stops} times before it "
        f"could record an attempt (killed, out of memory, or past its time limit); "
        f"after {stops - 1} new tries (SMTP_MAX_REHANDS) it is not tried again. It "
        "may have reached the recipient on any of those tries.",
        hint="Look for worker restarts (OOM kills, crashes, time limits) in the "
        "worker logs at the times of this email's events; the email may be what "
        "stops the worker. Send it again once the cause is fixed.",
    )
