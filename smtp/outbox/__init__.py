"""The outbox: every email is a row, and the row is the truth.

``email_enqueue`` writes the row and its SYSTEMAUDIT "queued" event in one
transaction and hands the id to Celery after commit. A worker claims rows with a
conditional UPDATE and a lease (``outbox_deliver``): a row that is sent is never
claimed again. System emails of one tenant are claimed in batches and sent over
one reused connection; each attempt is recorded before the next email is sent
(a worker that stops leaves at most one accepted email unrecorded), transient
failures are retried with exponential backoff and jitter (greylisting no sooner
than ``SMTP_GREYLIST_SECONDS``), permanent ones fail at once. ``outbox_sweep``
puts back every email whose lease ran out (a dead worker; after
``SMTP_MAX_REHANDS`` stops on one email it fails) and hands out again what was
left queued (a broker outage, a lost message).
"""

from smtp.outbox.enqueue import NewEmail, email_enqueue, emails_enqueue
from smtp.outbox.pool import close_pooled_connections
from smtp.outbox.publish import email_publish, emails_publish
from smtp.outbox.recording import retry_delay
from smtp.outbox.sending import (
    outbox_deliver,
    outbox_deliver_many,
    outbox_deliver_turn,
)
from smtp.outbox.sweeper import outbox_sweep

__all__ = [
    "NewEmail",
    "close_pooled_connections",
    "email_enqueue",
    "email_publish",
    "emails_enqueue",
    "emails_publish",
    "outbox_deliver",
    "outbox_deliver_many",
    "outbox_deliver_turn",
    "outbox_sweep",
    "retry_delay",
]
