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

from smtp.outbox.enqueue import (
    NewEmail,
    email_enqueue,
    email_publish,
    emails_enqueue,
    emails_publish,
)
from smtp.outbox.pool import close_pooled_connections
from smtp.outbox.recording import retry_delay
from smtp.outbox.sending import RECORD_EVERY, outbox_deliver, outbox_deliver_many
from smtp.outbox.sweeper import outbox_sweep

__all__ = [
    "RECORD_EVERY",
    "NewEmail",
    "close_pooled_connections",
    "email_enqueue",
    "email_publish",
    "emails_enqueue",
    "emails_publish",
    "outbox_deliver",
    "outbox_deliver_many",
    "outbox_sweep",
    "retry_delay",
]
