"""The shared limiter, on its own: in Redis and in the database, from several
threads at once (each with its own database connection, as workers have)."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import random
import threading
import time

import pytest
from django.db import connection

from smtp.models import DeliveryLimit, DeliveryLimitEntry
from smtp.outbox import limits
from tests.support.limited_servers import most_in_window
from tests.support.smtp_servers import free_port, smtp_settings

_ids = itertools.count(random.randrange(10**6, 10**9))

BACKENDS = ["database", "redis"]


@pytest.fixture(params=BACKENDS)
def backend(request, settings, transactional_db):
    """The limiter in the database (no REDIS_URL) or in Redis."""
    if request.param == "redis":
        url = os.environ.get("REDIS_URL", "")
        if not url:
            pytest.skip("needs REDIS_URL")
        settings.REDIS_URL = url
    else:
        settings.REDIS_URL = ""
    return request.param


def configuration(**limits_):
    """A configuration no other test uses (its own limit key)."""
    return dataclasses.replace(
        smtp_settings(25), configuration_id=next(_ids), **limits_
    )


def in_threads(count: int, work) -> None:
    def run() -> None:
        try:
            work()
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)


def test_no_window_holds_more_than_the_rate_across_threads(backend, settings):
    # given: 5 messages per (1-second) window, and 4 threads that want 20
    settings.SMTP_RATE_WINDOW_SECONDS = 1.0
    server = configuration(messages_per_minute=5)
    sent: list[float] = []
    lock = threading.Lock()
    wanted = 20

    def sender() -> None:
        while True:
            with lock:
                if len(sent) >= wanted:
                    return
            admission = limits.message_admit(server)
            if not admission.admitted:
                assert admission.reason == "rate"
                time.sleep(min(admission.wait, 0.2))
                continue
            # The message reaches the server now, then its entry is stamped.
            arrived = time.time()
            with lock:
                sent.append(arrived)
            limits.message_sent(server, admission.token)

    # when
    started = time.monotonic()
    in_threads(4, sender)

    # then: all sent, never more than 5 in any second, and not serialised
    # beyond what the rate asks (20 at 5/s take about 3 s, here under 30)
    assert len(sent) >= wanted
    assert most_in_window(sent, 1.0) <= 5
    assert time.monotonic() - started < 30


def test_an_admission_over_the_rate_says_when_the_next_turn_comes(backend, settings):
    settings.SMTP_RATE_WINDOW_SECONDS = 2.0
    server = configuration(messages_per_minute=2)
    for _ in range(2):
        admission = limits.message_admit(server)
        assert admission.admitted
        limits.message_sent(server, admission.token)
    held = limits.message_admit(server)
    assert not held.admitted
    assert held.reason == "rate"
    assert 1.0 < held.wait <= 2.1
    time.sleep(held.wait + 0.05)
    assert limits.message_admit(server).admitted


def test_a_turn_not_used_is_free_again(backend, settings):
    settings.SMTP_RATE_WINDOW_SECONDS = 30.0
    server = configuration(messages_per_minute=1)
    turn = limits.message_admit(server)
    assert turn.admitted
    assert not limits.message_admit(server).admitted
    limits.message_unused(server, turn.token)
    assert limits.message_admit(server).admitted


def test_a_message_being_sent_counts_until_it_is_done(backend, settings):
    # An entry not yet stamped as sent holds its place for the longest a
    # session may take: a slow message cannot let a window overfill.
    settings.SMTP_RATE_WINDOW_SECONDS = 0.2
    server = configuration(messages_per_minute=1)
    first = limits.message_admit(server)
    assert first.admitted
    time.sleep(0.4)
    held = limits.message_admit(server)
    assert not held.admitted
    limits.message_sent(server, first.token)
    time.sleep(0.25)
    assert limits.message_admit(server).admitted


def test_emails_a_person_waits_for_count_but_are_not_held(backend, settings):
    settings.SMTP_RATE_WINDOW_SECONDS = 5.0
    server = configuration(messages_per_minute=1, max_connections=1)
    assert limits.message_admit(server).admitted
    # over the rate and with the only slot taken, a test email still goes...
    slot = limits.connection_take(server)
    with limits.counted(server):
        pass
    # ...and counted: bulk emails make room for it
    assert not limits.message_admit(server).admitted
    limits.connection_release(server, slot)


def test_a_verification_takes_a_connection_but_no_message_turn(backend):
    server = configuration(messages_per_minute=1, max_connections=1)
    with limits.counted(server, message=False):
        assert limits.connection_take(server) is None
    assert limits.message_admit(server).admitted
    assert limits.connection_take(server)


def test_an_unsaved_drafts_session_counts_against_nothing(backend):
    server = configuration(messages_per_minute=1, max_connections=1)
    with limits.counted(None):
        pass
    assert limits.message_admit(server).admitted
    assert limits.connection_take(server)


def test_no_limit_admits_everything(backend):
    server = configuration(messages_per_minute=0, max_connections=0)
    for _ in range(50):
        assert limits.message_admit(server).admitted
    assert limits.connection_take(server) == ""


def test_connection_slots_are_shared_and_given_back(backend):
    server = configuration(max_connections=2)
    taken: list[str] = []
    lock = threading.Lock()

    def take() -> None:
        token = limits.connection_take(server)
        if token is not None:
            with lock:
                taken.append(token)

    in_threads(6, take)
    assert len(taken) == 2
    assert limits.connection_take(server) is None
    limits.connection_release(server, taken[0])
    again = limits.connection_take(server)
    assert again
    # one a person waits for is taken whatever the limit
    forced = limits.connection_take(server, hold=False)
    assert forced
    for token in (taken[1], again, forced):
        limits.connection_release(server, token)


def test_the_slot_of_a_dead_worker_expires_unless_renewed(backend, settings):
    settings.SMTP_CONNECTION_LEASE_SECONDS = 0.6
    server = configuration(max_connections=1)
    alive = limits.connection_take(server)
    assert alive
    for _ in range(3):
        time.sleep(0.3)
        limits.connection_renew(server, alive)
        assert limits.connection_take(server) is None
    # its worker died: nobody renews it
    time.sleep(0.8)
    assert limits.connection_take(server)


def test_waiting_for_a_slot_gives_up_after_a_second(backend):
    server = configuration(max_connections=1)
    token = limits.connection_take(server)
    started = time.monotonic()
    with pytest.raises(limits.LimitReached) as held:
        limits.connection_wait(server)
    assert held.value.reason == "connections"
    assert held.value.wait > 0
    assert time.monotonic() - started < limits.LONGEST_WAIT + 1
    limits.connection_release(server, token)
    assert limits.connection_wait(server)


def test_throttling_pauses_the_configuration_and_doubles_when_it_recurs(
    backend, settings
):
    settings.SMTP_THROTTLE_PAUSE_SECONDS = 0.4
    settings.SMTP_THROTTLE_MAX_PAUSE_SECONDS = 1.0
    server = configuration(messages_per_minute=0)
    assert limits.throttle_pause(server) == pytest.approx(0.4, abs=0.05)
    # other sessions throttled in the same moment do not lengthen it
    assert limits.throttle_pause(server) <= 0.4
    held = limits.message_admit(server)
    assert (held.admitted, held.reason) == (False, "paused")
    assert 0 < held.wait <= 0.4
    time.sleep(0.45)
    assert limits.message_admit(server).admitted
    # throttled again soon after the pause: twice as long, then capped
    assert limits.throttle_pause(server) == pytest.approx(0.8, abs=0.05)
    time.sleep(0.85)
    assert limits.throttle_pause(server) == pytest.approx(1.0, abs=0.05)


def test_a_pause_holds_one_configuration_only(backend, settings):
    settings.SMTP_THROTTLE_PAUSE_SECONDS = 5
    throttled, other = configuration(), configuration()
    limits.throttle_pause(throttled)
    assert not limits.message_admit(throttled).admitted
    assert limits.message_admit(other).admitted


def test_redis_down_lets_the_database_decide(settings, transactional_db, caplog):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    settings.SMTP_RATE_WINDOW_SECONDS = 5.0
    server = configuration(messages_per_minute=1, max_connections=1)
    limits.in_redis.client._logged_at = -1e9
    with caplog.at_level(logging.WARNING, logger="smtp.outbox.limits"):
        started = time.monotonic()
        assert limits.message_admit(server).admitted
        assert not limits.message_admit(server).admitted
        slot = limits.connection_take(server)
        assert slot
        assert limits.connection_take(server) is None
        limits.connection_release(server, slot)
        assert time.monotonic() - started < 10
    assert "Redis is unreachable for delivery limits" in caplog.text
    assert DeliveryLimit.objects.filter(key=server.limit_key).exists()
    assert (
        DeliveryLimitEntry.objects.filter(
            limit_id=server.limit_key, kind="message"
        ).count()
        == 1
    )
    assert not DeliveryLimitEntry.objects.filter(
        limit_id=server.limit_key, kind="connection"
    ).exists()


def test_redis_going_away_after_a_decision_costs_nothing_but_a_log_line(
    settings, transactional_db, caplog
):
    url = os.environ.get("REDIS_URL", "")
    if not url:
        pytest.skip("needs REDIS_URL")
    settings.REDIS_URL = url
    server = configuration(messages_per_minute=5, max_connections=1)
    admission = limits.message_admit(server)
    slot = limits.connection_take(server)
    assert admission.token and slot
    assert not admission.token.startswith(limits.IN_DATABASE)
    # Redis is away when the message is done and the session closes
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    limits.in_redis.client._logged_at = -1e9
    with caplog.at_level(logging.WARNING, logger="smtp.outbox.limits"):
        limits.message_sent(server, admission.token)
        limits.connection_renew(server, slot)
        limits.connection_release(server, slot)
    assert "Redis is unreachable for delivery limits" in caplog.text
    # back: the slot is still counted until its lease runs out, never lost
    settings.REDIS_URL = url
    assert limits.connection_take(server) is None


def test_held_emails_come_back_at_the_rates_pace(settings):
    settings.SMTP_RATE_WINDOW_SECONDS = 60
    assert limits.turns(5.0, 4, per_window=2) == [5.0, 35.0, 65.0, 95.0]
    assert limits.turns(3.0, 2, per_window=0) == [3.0, 3.0]
