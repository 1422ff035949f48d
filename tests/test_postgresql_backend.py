"""The health check of a reused PostgreSQL connection (core/postgresql): no round
trip while the server has said nothing, and a dead connection is still found
and replaced before a request uses it.

Each test opens connections of its own (the backend as settings configure it),
so that ending one does not touch the suite's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.db import connection, connections

from tests.support.proxy import TcpProxy

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="checks PostgreSQL connections"
    ),
    pytest.mark.django_db,
]

MARK = "SELECT 'the last query before the check'"


@pytest.fixture
def own() -> Iterator[list]:
    """Connections as Django makes them for the default database; closed after."""
    made: list = []
    yield made
    for wrapper in made:
        wrapper.close()


def _open(own: list, **settings):
    wrapper = connections.create_connection("default")
    wrapper.settings_dict = {**wrapper.settings_dict, **settings}
    wrapper.ensure_connection()
    own.append(wrapper)
    return wrapper


def _run(wrapper, sql: str, params: list | None = None):
    with wrapper.connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() if cursor.description else None


def _last_query(observer, pid: int) -> str:
    return _run(observer, "SELECT query FROM pg_stat_activity WHERE pid = %s", [pid])[0]


def _wait(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _request_starts(wrapper) -> None:
    """What Django does to a kept connection when a request (or a task) starts
    and then uses it (``close_old_connections``, then the first cursor)."""
    wrapper.close_if_unusable_or_obsolete()
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT 1")


def test_the_configured_backend_checks_without_a_round_trip():
    assert type(connections["default"]).__module__ == "core.postgresql.base"
    assert connection.settings_dict["CONN_HEALTH_CHECKS"] is True


def test_an_idle_connection_the_server_kept_is_usable_without_a_query(own):
    wrapper, observer = _open(own), _open(own)
    pid = wrapper.connection.info.backend_pid
    _run(wrapper, MARK)

    assert wrapper.is_usable()
    wrapper.close_if_unusable_or_obsolete()  # a request starts
    wrapper.close_if_health_check_failed()  # and its first cursor checks

    assert wrapper.health_check_done
    assert _last_query(observer, pid) == MARK
    assert wrapper.connection.info.backend_pid == pid


def test_a_connection_the_server_ended_is_replaced_before_a_request_uses_it(own):
    wrapper, observer = _open(own), _open(own)
    pid = wrapper.connection.info.backend_pid
    assert _run(observer, "SELECT pg_terminate_backend(%s)", [pid])[0] is True
    _wait(
        lambda: (
            _run(
                observer, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid]
            )[0]
            == 0
        )
    )

    assert not wrapper.is_usable()
    _request_starts(wrapper)  # no error: a new connection

    assert wrapper.connection.info.backend_pid != pid


def test_a_connection_the_network_reset_is_replaced_before_a_request_uses_it(own):
    settings = connection.settings_dict
    proxy = TcpProxy(
        settings.get("HOST") or "127.0.0.1", int(settings.get("PORT") or 5432)
    )
    try:
        wrapper = _open(own, HOST="127.0.0.1", PORT=str(proxy.port))
        pid = wrapper.connection.info.backend_pid
        proxy.cut()
        proxy.restore()

        assert not wrapper.is_usable()
        _request_starts(wrapper)

        assert wrapper.connection.info.backend_pid != pid
    finally:
        proxy.stop()


def test_something_unread_on_an_idle_connection_is_checked_with_a_query(own):
    """A notification arrived unasked: the socket is readable, though the server
    is alive; the check asks it (and the connection is kept)."""
    wrapper, observer = _open(own), _open(own)
    pid = wrapper.connection.info.backend_pid
    _run(wrapper, "LISTEN opsconsole_health_check")
    _run(observer, "NOTIFY opsconsole_health_check")
    _run(wrapper, MARK)  # the notification may come with this reply, or after it
    _run(observer, "NOTIFY opsconsole_health_check")
    time.sleep(0.2)

    assert wrapper.is_usable()

    assert _last_query(observer, pid) == "SELECT 1"
    assert wrapper.connection.info.backend_pid == pid


def test_a_connection_inside_a_transaction_is_checked_with_a_query(own):
    wrapper, observer = _open(own), _open(own)
    pid = wrapper.connection.info.backend_pid
    wrapper.connection.autocommit = False
    _run(wrapper, MARK)

    assert wrapper.is_usable()

    assert _last_query(observer, pid) == "SELECT 1"
    wrapper.connection.rollback()
