"""Failover between levels: the configurations a batch may use, in order, and
the switch to the next one when a session cannot be opened (see the operations
guide, "Failover")."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from audit.models import Category
from audit.services import audit_event_record, event_scope
from smtp.delivery import Step
from smtp.delivery.hints import FAILED_OVER
from smtp.delivery.server import SmtpServer
from smtp.delivery.steps import step_label
from smtp.enums import HealthStatus, Level
from smtp.models import Email, SmtpConfiguration
from smtp.outbox.recording import Result
from smtp.selectors import smtp_delivery_route, smtp_server_of_draft

# Steps after which a configuration with failover on hands its emails to the
# next level's: its server cannot be reached, or will not serve this console (no
# session at all; a 421 greeting is a server refusing service). Never a refusal
# of the sender, a recipient or the message, and not EHLO (a reachable server's
# policy about this console's name).
FAILOVER_STEPS = frozenset({"token", "resolve", "connect", "tls", "greeting", "auth"})


@dataclass
class Route:
    """The configurations a batch may use, in order (``smtp_delivery_route``),
    and the one in use now."""

    servers: tuple[SmtpServer, ...]
    index: int = 0
    # The steps of the sessions that could not be opened, each followed by a
    # "failover" step: shown before every later email's own steps.
    before: list[dict] = field(default_factory=list)
    # The level in effect, once it failed over ("" until then).
    fallback_from: str = ""
    # No failover after this (monotonic clock): the batch's time to give back
    # untried emails, so that the next session still ends inside the task's
    # time limit.
    until: float = float("inf")

    @property
    def server(self) -> SmtpServer | None:
        return self.servers[self.index] if self.servers else None

    def mark(self, result: Result) -> Result:
        """``result`` with the failed sessions before it, once failed over."""
        if self.fallback_from:
            result.steps = [*self.before, *result.steps]
            result.fallback_from = self.fallback_from
        return result

    def alike(self, email: Email, result: Result) -> Result:
        """The same failure as ``result`` for ``email``, not tried: the session
        cannot be opened."""
        other = Result.failure(
            email, result.steps, self.server, transient=result.transient
        )
        other.fallback_from = result.fallback_from
        return other

    def fail_over(self, result: Result) -> bool:
        """Move on to the next configuration if ``result`` (its own steps) ended
        at session setup and there is one; whether it did."""
        failed = result.failed
        if (
            result.ok
            or result.interrupted
            or failed is None
            or failed["name"] not in FAILOVER_STEPS
            or self.index + 1 >= len(self.servers)
            or time.monotonic() > self.until
        ):
            return False
        failing, fallback = self.servers[self.index], self.servers[self.index + 1]
        record_failover(server=failing, failed=failed, fallback=fallback)
        self.before += [*result.steps, _failover_step(failing, fallback, failed)]
        self.fallback_from = self.fallback_from or failing.level
        self.index += 1
        return True


def _failover_step(failing: SmtpServer, fallback: SmtpServer, failed: dict) -> dict:
    return Step(
        name="failover",
        status="ok",
        detail=f"The {Level(failing.level).label.lower()} configuration "
        f"({failing.host}:{failing.port}) failed at {step_label(failed['name'])}; "
        f"it fails over to the {Level(fallback.level).label.lower()} "
        f"configuration ({fallback.host}:{fallback.port}).",
        hint="Fix the failing configuration: until then its emails go through "
        "the next level's.",
    ).as_dict()


def route_for(email: Email, *, until: float = float("inf")) -> Route:
    """The configurations ``email`` (and its batch) may be sent with."""
    if email.draft_id is not None:
        return Route(servers=(smtp_server_of_draft(email.draft),), until=until)
    servers = smtp_delivery_route(
        partner=email.partner, organization=email.organization
    )
    if email.is_test:
        servers = servers[:1]  # a test tries one configuration: never another
    return Route(servers=servers, until=until)


def record_failover(*, server: SmtpServer, failed: dict, fallback: SmtpServer) -> None:
    """Mark the configuration whose session could not be opened as failing, with
    the level its emails fail over to (the SMTP page's health banner shows it);
    one SYSTEMAUDIT event when it turns failing, none while it stays so."""
    if server.configuration_id is None:
        return  # the controller defaults have no row (nor a failover of their own)
    to = Level(fallback.level).label.lower()
    detail = (
        f"{failed.get('name', '')}: {failed.get('detail', '')} Emails fail over to "
        f"the {to} configuration until this server can be reached again."
    )[:500]
    with transaction.atomic():
        row = (
            SmtpConfiguration.objects.select_for_update(of=("self",))
            .select_related("partner", "organization")
            .filter(pk=server.configuration_id)
            .first()
        )
        if row is None or (row.is_failing and row.health_detail == detail):
            return
        if server.updated_at is not None and row.updated_at != server.updated_at:
            return  # changed since these settings were read: news about old ones
        SmtpConfiguration.objects.filter(pk=row.pk).update(
            health_status=HealthStatus.FAILING,
            health_checked_at=timezone.now(),
            health_detail=detail,
            health_hint_code=FAILED_OVER,
        )
        if row.is_failing:
            return
        owner = row.organization or row.partner
        audit_event_record(
            category=Category.SYSTEMAUDIT,
            type="smtp_config.health.failing",
            summary=f"SMTP server of {row.level.label.lower()} {owner.name} cannot "
            f"be reached: emails fail over to the {to} configuration",
            **event_scope(row),
            detail={
                "level": row.level,
                "server": f"{server.host}:{server.port}",
                "step": failed.get("name", ""),
                "reply_code": failed.get("reply_code"),
                "reason": detail,
                "hint_code": FAILED_OVER,
                "fallback_to": fallback.level,
            },
        )
