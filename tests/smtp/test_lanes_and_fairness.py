"""Lanes and fairness with a real worker, Redis and real SMTP servers: a person
waiting for an email is not behind another tenant's bulk, and one tenant's
backlog of alerts does not hold back another tenant's."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from smtp.models import Email, EmailKind, EmailStatus, Security, SmtpConfiguration
from smtp.services import send_system_email
from tests.support.outbox import alerts_queued
from tests.support.smtp_servers import Behaviour, SmtpTestServer
from tests.support.worker import wait_until


@pytest.fixture
def sinks():
    started: list[SmtpTestServer] = []

    def start(**behaviour) -> SmtpTestServer:
        server = SmtpTestServer(behaviour=Behaviour(**behaviour))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def configure(partner, server) -> None:
    SmtpConfiguration.objects.create(
        partner=partner,
        host="127.0.0.1",
        port=server.port,
        security=Security.NONE,
        max_connections=0,
    )


def flooding(demo, sinks, count: int) -> tuple[SmtpTestServer, SmtpTestServer]:
    """Tenant A (acme-prod) with ``count`` alerts queued and being sent to a
    sink that takes a few milliseconds a message; tenant B (globex) with a sink
    of its own. Returns both sinks."""
    slow, fast = sinks(data_delay=0.004), sinks()
    configure(demo["acme"], slow)
    configure(demo["globex"], fast)
    alerts_queued(demo["acme-prod"], count)
    wait_until(lambda: len(slow.messages) >= 20, timeout=60)
    return slow, fast


def unfinished(organization) -> int:
    return Email.objects.filter(
        organization=organization,
        status__in=[EmailStatus.QUEUED, EmailStatus.SENDING],
    ).count()


def sent_before(email: Email, organization, *, timeout: float) -> int:
    """Waits until ``email`` is sent; how many of ``organization``'s emails were
    still unfinished then."""
    left: list[int] = []

    def sent() -> bool:
        email.refresh_from_db()
        if email.status == EmailStatus.SENT:
            left.append(unfinished(organization))
            return True
        assert email.status != EmailStatus.FAILED, email.last_error
        return False

    wait_until(sent, timeout=timeout, interval=0.05)
    return left[0]


def test_a_password_reset_is_not_behind_another_tenants_5000_alerts(
    worker, demo, sinks
):
    # given: tenant A (acme-prod) with 5,000 alerts queued to a sink that takes
    # a few milliseconds a message, and tenant B (globex) with a sink of its own
    _slow, fast = flooding(demo, sinks, 5000)
    # when: a person of tenant B asks for a password reset
    reset = send_system_email(
        kind=EmailKind.PASSWORD_RESET,
        to="someone@globex.example",
        context={"link": "https://console.example/reset/abc", "expires_in": "1 hour"},
        organization=demo["globex-main"],
    )
    # then: it is sent while most of A's backlog still waits
    left = sent_before(reset, demo["acme-prod"], timeout=30)
    assert left > 2500, f"the reset waited for A's backlog ({left} left)"
    assert [m.rcpt_tos for m in fast.messages] == [["someone@globex.example"]]
    # (A's backlog is not waited for: what is still queued is taken off, and
    # the batches in hand end)
    Email.objects.filter(
        organization=demo["acme-prod"], status=EmailStatus.QUEUED
    ).update(status=EmailStatus.FAILED)
    wait_until(lambda: unfinished(demo["acme-prod"]) == 0, timeout=120)


def test_one_tenants_backlog_of_alerts_does_not_hold_back_anothers(worker, demo, sinks):
    # given: tenant A (acme-prod) with 2,000 alerts queued, being sent
    slow, _fast = flooding(demo, sinks, 2000)
    # when: tenant B queues one alert, in the same (bulk) lane
    other = send_system_email(
        kind=EmailKind.ALERT,
        to="oncall@globex.example",
        context={"title": "Disk almost full", "message": "Node 1 at 95%."},
        organization=demo["globex-main"],
    )
    # then: it is sent within a few of A's batches, not after all of them
    left = sent_before(other, demo["acme-prod"], timeout=30)
    assert left > 1000, f"B's alert waited for A's backlog ({left} left)"
    # and: A's alerts all arrive, each once
    wait_until(lambda: unfinished(demo["acme-prod"]) == 0, timeout=300)
    recipients = [m.rcpt_tos[0] for m in slow.messages]
    assert len(recipients) == len(set(recipients)) == 2000


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="places live in Redis")
@pytest.mark.django_db
def test_a_tenant_holds_at_most_its_places_and_a_lost_turn_frees_its_own(
    demo, settings
):
    from core.redis import shared_redis
    from smtp.outbox import turns

    # given: a queue of this test's own, two places per tenant, short leases
    settings.CELERY_TASK_DEFAULT_QUEUE = f"places-{uuid.uuid4().hex[:10]}"
    settings.SMTP_TURNS_PER_TENANT = 2
    settings.SMTP_LEASE_SECONDS = 1
    client = shared_redis()
    tenant = (demo["acme"].pk, demo["acme-prod"].pk)
    try:
        # when: three turns are asked for
        places = [turns._place_taken(*tenant) for _ in range(3)]
        # then: two places are taken, the third request finds none
        assert all(places[:2]) and places[2] == ""
        # and: another tenant has places of its own
        assert turns._place_taken(demo["globex"].pk, None)
        # when: one turn ends, its place is free again
        turns._place_given_back(*tenant, places[0])
        assert turns._place_taken(*tenant)
        assert turns._place_taken(*tenant) == ""
        # when: the other turns are lost (their worker stopped), their places
        # come back once their leases end
        time.sleep(1.2)
        assert turns._place_taken(*tenant)
    finally:
        client.delete(
            *client.keys(f"smtp:turns:{settings.CELERY_TASK_DEFAULT_QUEUE}:*")
        )
