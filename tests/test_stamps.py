"""Stamps: a process keeps its copy while the stamp in Redis is unchanged, reads
again after a renewal (made after commit only), and reads every time without
Redis or while Redis is down, without waiting for it on every read."""

from __future__ import annotations

import os
import time
import uuid

import pytest
from django.db import transaction

from core import stamps
from core.stamps import (
    stamp_current,
    stamp_renew,
    stamp_renew_on_commit,
    stamped_copies_clear,
    stamped_copy,
)
from tests.support.smtp_servers import free_port

needs_redis = pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="needs REDIS_URL"
)


class Reader:
    """A read that counts its calls and returns the number of the call."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return self.calls


def a_name() -> str:
    return f"test:{uuid.uuid4().hex}"


@needs_redis
def test_a_copy_is_kept_while_its_stamp_is_unchanged_and_read_again_after_renewal():
    name, read = a_name(), Reader()
    # given: a first read
    assert stamped_copy(name, ("key", 1), read) == 1
    # when: read again with the stamp unchanged
    assert stamped_copy(name, ("key", 1), read) == 1
    # then: the copy was used
    assert read.calls == 1
    # when: another key under the same stamp
    assert stamped_copy(name, ("key", 2), read) == 2
    # and: the stamp is renewed (any process: the stamp is in Redis)
    stamp_renew(name)
    # then: both keys are read again
    assert stamped_copy(name, ("key", 1), read) == 3
    assert stamped_copy(name, ("key", 2), read) == 4
    assert stamped_copy(name, ("key", 1), read) == 3


@needs_redis
def test_a_copy_older_than_the_maximum_age_is_read_again(monkeypatch):
    name, read = a_name(), Reader()
    monkeypatch.setattr(stamps, "MAX_AGE", 0.05)
    stamped_copy(name, "key", read)
    time.sleep(0.1)
    stamped_copy(name, "key", read)
    assert read.calls == 2


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_the_stamp_is_renewed_after_commit_and_not_after_a_rollback():
    name = a_name()
    before = stamp_current(name)
    # when: renewed in a transaction that rolls back
    with pytest.raises(RuntimeError), transaction.atomic():
        stamp_renew_on_commit(name)
        raise RuntimeError("rolled back")
    # then: unchanged
    assert stamp_current(name) == before
    # when: in one that commits
    with transaction.atomic():
        stamp_renew_on_commit(name)
        # then: unchanged until the commit (a copy read now is of the old rows)
        assert stamp_current(name) == before
    assert stamp_current(name) not in (before, None)


def test_without_redis_every_read_goes_to_the_source(settings):
    settings.REDIS_URL = ""
    read = Reader()
    for _ in range(3):
        stamped_copy(a_name(), "key", read)
    assert read.calls == 3
    assert stamp_current("anything") is None


def test_while_redis_is_down_reads_go_to_the_source_without_waiting_each_time(
    settings, monkeypatch
):
    # given: a Redis that refuses connections (a closed loopback port)
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    connects = []
    real_current = stamps.shared_redis

    def counted(timeout):
        connects.append(timeout)
        return real_current(timeout)

    monkeypatch.setattr(stamps, "shared_redis", counted)
    read = Reader()
    # when: read many times
    for _ in range(20):
        stamped_copy("down", "key", read)
    # then: every read went to the source, and Redis was tried once, not per read
    assert read.calls == 20
    assert len(connects) == 1
    # and: after the pause it is tried again
    monkeypatch.setattr(stamps, "_down_until", 0.0)
    stamped_copy("down", "key", read)
    assert len(connects) == 2
    stamped_copies_clear()
