"""Handing emails' ids to the broker (with ``turns`` for the bulk lane): the only
code of the outbox that does.

Tasks are named, not imported (``smtp.tasks`` is above the outbox). On a broker
outage the emails stay queued with ``enqueued_at`` cleared, and the sweeper hands
them out once the broker is back.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading

from django.conf import settings
from django.db import close_old_connections, connections
from django.utils import timezone

from core.publish import publish
from smtp.enums import INTERACTIVE_KINDS
from smtp.models import Email, EmailStatus
from smtp.outbox.turns import turn_request

logger = logging.getLogger(__name__)

# The Celery names of the tasks in smtp/tasks.py: wire names, kept as they are.
DELIVER_EMAIL = "smtp.deliver_email"
DELIVER_EMAILS = "smtp.deliver_emails"


def _published(email_ids: list[int], done: bool) -> bool:
    if not done:
        logger.warning(
            "%s email(s) stay queued until the sweeper hands them out again.",
            len(email_ids),
        )
        Email.objects.filter(pk__in=email_ids, status=EmailStatus.QUEUED).update(
            enqueued_at=None
        )
    return done


def lane(kind: str) -> str:
    """The queue of an email of this kind: interactive for the emails a person
    waits for, the default (bulk) queue for the rest."""
    if kind in INTERACTIVE_KINDS:
        return settings.CELERY_QUEUE_INTERACTIVE
    return settings.CELERY_TASK_DEFAULT_QUEUE


def emails_publish(email_ids: list[int], *, kind: str) -> bool:
    """Hand several emails of one kind to the broker in one task."""
    return _published(
        email_ids,
        publish(DELIVER_EMAILS, kwargs={"email_ids": email_ids}, queue=lane(kind)),
    )


def email_publish(
    email_id: int, *, kind: str, countdown: float = 0, first: bool = False
) -> bool:
    """Hand one email's id to its lane's queue (``countdown``: a retry's delay)."""
    published = _published(
        [email_id],
        publish(
            DELIVER_EMAIL,
            kwargs={"email_id": email_id},
            countdown=countdown,
            queue=lane(kind),
        ),
    )
    if published and not first:
        Email.objects.filter(pk=email_id).update(enqueued_at=timezone.now())
    return published


class _Handover:
    """Hands new emails to the broker from a thread of this process, so that the
    caller (a web request) does not wait for the publish.

    Only after commit: ``emails_enqueue`` calls ``email_publish_soon`` from
    ``transaction.on_commit``. The row is the truth: a publish that fails clears
    ``enqueued_at`` as before, and an id still waiting here when the process dies
    is handed out by the sweeper once ``SMTP_REQUEUE_AFTER_SECONDS`` have passed.
    The process waits for the thread at exit (up to ``EXIT_WAIT`` seconds).
    """

    EXIT_WAIT = 10.0
    BATCH = 500

    def __init__(self) -> None:
        self._emails: queue.SimpleQueue[Email | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def submit(self, email: Email) -> None:
        with self._lock:
            # A forked process (gunicorn's workers) starts its own thread.
            if self._thread is None or self._pid != os.getpid():
                self._emails = queue.SimpleQueue()
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="outbox-handover", daemon=True
                )
                self._thread.start()
                atexit.register(self.flush)
        self._emails.put(email)

    def _run(self) -> None:
        emails = self._emails
        ending = False
        while not ending:
            # What arrived meanwhile goes together: one turn request per tenant
            # for a burst of alerts, not one each.
            batch = [emails.get()]
            while not emails.empty() and len(batch) < self.BATCH:
                batch.append(emails.get())
            if None in batch:
                ending = True
                batch = [email for email in batch if email is not None]
            try:
                emails_hand_over(batch, one_task_each=True)
            except Exception:
                logger.exception(
                    "Emails %s not handed to the broker.", [e.pk for e in batch]
                )
            finally:
                close_old_connections()
        # This thread's database connection ends with it.
        connections.close_all()

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every id submitted so far was handed over; the thread ends."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is None or self._pid != os.getpid():
                return
            self._emails.put(None)
        thread.join(self.EXIT_WAIT if timeout is None else timeout)


_handover = _Handover()


def emails_hand_over(emails: list[Email], *, one_task_each: bool = False) -> None:
    """Hand new emails to their lanes: the interactive ones in tasks of up to
    ``SMTP_BATCH_SIZE`` ids (``one_task_each``: a task each, for emails queued
    by separate requests), the bulk ones as one turn request per tenant."""
    interactive: dict[str, list[int]] = {}
    tenants: dict[tuple[int | None, int | None], list[int]] = {}
    for email in emails:
        if email.kind in INTERACTIVE_KINDS:
            interactive.setdefault(email.kind, []).append(email.pk)
        else:
            tenant = (email.partner_id, email.organization_id)
            tenants.setdefault(tenant, []).append(email.pk)
    size = settings.SMTP_BATCH_SIZE
    for kind, ids in interactive.items():
        if one_task_each:
            for email_id in ids:
                email_publish(email_id, kind=kind, first=True)
            continue
        for start in range(0, len(ids), size):
            emails_publish(ids[start : start + size], kind=kind)
    for (partner_id, organization_id), ids in tenants.items():
        turn_request(partner_id, organization_id, email_ids=ids)


def email_publish_soon(email: Email) -> None:
    """Hand a new email to its lane from this process's handover thread (see
    ``_Handover``); the caller does not wait."""
    _handover.submit(email)


def emails_handed_over(timeout: float = 10.0) -> None:
    """Wait until the ids submitted so far were handed to the broker (tests)."""
    _handover.flush(timeout)
