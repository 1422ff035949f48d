"""Celery tasks of the SMTP app: thin wrappers that take ids, never objects or
passwords. Worker concerns (the sweeper, heartbeats) are in ``smtp.worker``."""

from __future__ import annotations

from celery import shared_task

from smtp.outbox import outbox_deliver, outbox_deliver_many, outbox_deliver_turn
from smtp.services import smtp_config_health_check, smtp_config_health_check_targets


@shared_task(name="smtp.deliver_email", ignore_result=True)
def deliver_email_task(*, email_id: int) -> None:
    """Claim the email (and a batch of its tenant's) and send it."""
    outbox_deliver(email_id=email_id)


@shared_task(name="smtp.deliver_emails", ignore_result=True)
def deliver_emails_task(*, email_ids: list[int]) -> None:
    """Claim these emails and send them over one connection per configuration."""
    outbox_deliver_many(email_ids=email_ids)


@shared_task(name="smtp.deliver_turn", ignore_result=True)
def deliver_turn_task(
    *, partner_id: int | None, organization_id: int | None, place: str = "-"
) -> None:
    """One turn of a tenant in the bulk lane: a batch of its due alerts."""
    outbox_deliver_turn(
        partner_id=partner_id, organization_id=organization_id, place=place
    )


@shared_task(name="smtp.health_check_all", ignore_result=True)
def health_check_all_task() -> None:
    """Beat: check every configuration in use, one task each."""
    for configuration_id in smtp_config_health_check_targets():
        health_check_task.delay(configuration_id=configuration_id)


@shared_task(name="smtp.health_check", ignore_result=True)
def health_check_task(*, configuration_id: int) -> None:
    smtp_config_health_check(configuration_id=configuration_id)
