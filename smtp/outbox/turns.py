"""Turns: how the bulk lane is shared fairly between tenants.

A tenant's bulk emails (alerts) are not one task each: the tenant gets a *turn*
(the task ``smtp.deliver_turn``), which claims at most ``SMTP_BATCH_SIZE`` of its
due emails, sends them over one connection, and, while more are due, queues the
tenant's next turn at the back of the bulk queue. Every tenant with emails
waiting therefore holds at most ``SMTP_TURNS_PER_TENANT`` places in the queue,
and the queue serves them round-robin: a tenant with 50,000 alerts queued delays
another tenant's first alert by at most that many batches, not by its backlog.

The places are counted in Redis (``REDIS_URL``), each with a lease of
``SMTP_LEASE_SECONDS`` so that a turn lost with its worker does not keep one.
Without Redis (development), or while Redis is down, every request queues a
turn: nothing waits longer, the queue is only less fair. Whatever happens to a
turn, the rows stay the truth: the sweeper hands out every email left queued
(``SMTP_REQUEUE_AFTER_SECONDS``).
"""

from __future__ import annotations

import logging
import time
import uuid

import redis
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from core.publish import publish
from core.redis import shared_redis
from smtp.enums import INTERACTIVE_KINDS
from smtp.models import Email, EmailStatus

logger = logging.getLogger(__name__)

# The Celery name of the task in smtp/tasks.py: a wire name, kept as it is.
DELIVER_TURN = "smtp.deliver_turn"

# KEYS[1]: the tenant's places (a sorted set: place -> lease end); ARGV: now,
# most places, this place, its lease end. Drops places whose lease ended; 1 if
# this one was taken.
_TAKE_PLACE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
    return 0
end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
redis.call('EXPIRE', KEYS[1], math.ceil(ARGV[4] - ARGV[1]) + 1)
return 1
"""


def _key(partner_id: int | None, organization_id: int | None) -> str:
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    return f"smtp:turns:{queue}:{partner_id}:{organization_id}"


def bulk_of_tenant(partner_id: int | None, organization_id: int | None) -> Q:
    """The tenant's emails a turn sends: system emails of the bulk lane that no
    worker stopped on (those are sent alone, see claims)."""
    return Q(
        partner_id=partner_id,
        organization_id=organization_id,
        draft__isnull=True,
        rehands=0,
    ) & ~Q(kind__in=INTERACTIVE_KINDS)


def _place_taken(partner_id: int | None, organization_id: int | None) -> str:
    """A place for one more turn of this tenant in the queue: its name, or ""
    when the tenant holds all its places. Each place is leased for
    ``SMTP_LEASE_SECONDS``: a turn lost with its worker frees its place then.
    Places are not counted without Redis, or while it is down ("-": taken)."""
    client = shared_redis()
    if client is None:
        return "-"
    place = uuid.uuid4().hex
    now = time.time()
    try:
        taken = client.eval(
            _TAKE_PLACE,
            1,
            _key(partner_id, organization_id),
            now,
            settings.SMTP_TURNS_PER_TENANT,
            place,
            now + settings.SMTP_LEASE_SECONDS,
        )
    except redis.RedisError as error:
        logger.warning("Turns not counted (Redis: %s); queuing one anyway.", error)
        return "-"
    return place if taken else ""


def _place_given_back(
    partner_id: int | None, organization_id: int | None, place: str
) -> None:
    client = shared_redis()
    if client is None or place == "-":
        return
    try:
        client.zrem(_key(partner_id, organization_id), place)
    except redis.RedisError as error:
        # The place comes back when its lease runs out.
        logger.warning("Turn place not given back (Redis: %s).", error)


def turn_request(
    partner_id: int | None,
    organization_id: int | None,
    *,
    email_ids: list[int] | None = None,
) -> bool:
    """Queue a turn for this tenant unless it holds all its places already (its
    queued or running turns will send ``email_ids`` too). False: the broker is
    down; ``email_ids`` are marked for the sweeper."""
    place = _place_taken(partner_id, organization_id)
    if not place:
        return True
    if publish(
        DELIVER_TURN,
        kwargs={
            "partner_id": partner_id,
            "organization_id": organization_id,
            "place": place,
        },
    ):
        return True
    _place_given_back(partner_id, organization_id, place)
    if email_ids:
        Email.objects.filter(pk__in=email_ids, status=EmailStatus.QUEUED).update(
            enqueued_at=None
        )
    return False


def bulk_due(partner_id: int | None, organization_id: int | None) -> bool:
    """Whether the tenant has bulk emails a turn could claim now."""
    return Email.objects.filter(
        bulk_of_tenant(partner_id, organization_id),
        status=EmailStatus.QUEUED,
        next_attempt_at__lte=timezone.now(),
    ).exists()


def turn_done(
    partner_id: int | None, organization_id: int | None, *, place: str
) -> None:
    """A turn ended: give its place back, and queue the next one while the tenant
    has due emails (looked for after giving the place back, so that an email
    enqueued meanwhile either found no free place, and is seen here, or queued a
    turn itself)."""
    _place_given_back(partner_id, organization_id, place)
    if bulk_due(partner_id, organization_id):
        turn_request(partner_id, organization_id)
