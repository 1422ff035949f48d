"""Reliability tests run workers of their own and stop brokers and databases;
the suite's shared worker, if an earlier test started it, is paused meanwhile
(its sweeper shares the test database and would hand their emails out)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _without_the_shared_worker(request):
    uses_database = request.node.get_closest_marker("django_db") or {
        "db",
        "transactional_db",
        "demo",
    } & set(request.fixturenames)
    if uses_database and "worker" not in request.fixturenames:
        # The database first: the worker resumes before the test's tables are
        # emptied, so that no lock it holds stops the flush.
        request.getfixturevalue("transactional_db")
        request.getfixturevalue("no_shared_worker")
