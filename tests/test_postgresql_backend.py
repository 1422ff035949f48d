"""The health check of a reused PostgreSQL connection (core/postgresql): no round
trip while the server has said nothing, and a dead connection is still found
and replaced before a request uses it. Statements run often are prepared in the
server where the code asks for it (DATABASE_PREPARED_STATEMENTS), and one a
migration made stale is prepared again rather than failing on that connection
until it closes.

Each test opens connections of its own (the backend as settings configure it),
so that ending one does not touch the suite's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.db import connection, connections
from psycopg import errors

from core.postgresql import prepared_in_server
from tenants.models import Organization, Partner
from tests.support.proxy import TcpProxy
from tests.test_settings import start_django

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


def _prepared(wrapper, text: str) -> int:
    """How many statements with this text the connection has prepared."""
    return _run(
        wrapper,
        "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
        [text],
    )[0]


def test_a_statement_is_prepared_in_the_server_only_where_the_code_asks(own):
    wrapper = _open(own)
    assert wrapper.settings_dict["OPTIONS"]["server_side_binding"] is True
    for n in range(20):
        assert _run(wrapper, "SELECT %s::int + 1", [n]) == (n + 1,)
    assert _prepared(wrapper, "SELECT $1::int + 1") == 0

    with prepared_in_server():
        assert _run(wrapper, "SELECT %s::int + 1", [41]) == (42,)

    assert _prepared(wrapper, "SELECT $1::int + 1") == 1
    assert _run(wrapper, "SELECT %s::int + 1", [1]) == (2,)
    assert _prepared(wrapper, "SELECT $1::int + 1") == 1


def test_the_session_with_its_user_is_prepared_and_an_audit_page_is_not(demo, login):
    """The session and its user are looked up by the session's key: one plan
    serves every session. A
    page of events is a time window: prepared, PostgreSQL would plan it once for
    every window, and an OFFSET page of such a plan took 10 times as long."""
    client = login(demo["acme_admin"])
    for _ in range(3):
        # The demo partner has no configuration of its own: 404, once its
        # rows have been read.
        assert client.get("/event/v1/email/config").status_code == 404
        assert client.get("/opsauditlogs/?timefrom=now-7d&limit=5").status_code == 200

    assert _prepared(
        connection, '%FROM "tenants_session" LEFT OUTER JOIN "tenants_user"%'
    )
    assert _prepared(connection, '%FROM "smtp_smtpconfiguration"%') >= 1
    # (Events written in bulk are one INSERT prepared in the server.)
    assert _prepared(connection, 'SELECT %FROM "audit_auditevent"%') == 0


@pytest.mark.parametrize(
    ("value", "options"),
    [
        ("false", "{}"),
        ("true", "{'server_side_binding': True, 'prepare_threshold': 2147483647}"),
    ],
)
def test_prepared_statements_can_be_turned_off_for_a_pooler(value, options):
    result = start_django(
        DEBUG="true",
        DATABASE_PREPARED_STATEMENTS=value,
        code="from django.conf import settings; "
        "print({k: v for k, v in settings.DATABASES['default'].get('OPTIONS', {})"
        ".items() if k in ('server_side_binding', 'prepare_threshold')})",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == options


READ = "SELECT id, name FROM prepare_probe WHERE id = %s"
WIDEN = "ALTER TABLE prepare_probe ALTER COLUMN name TYPE varchar(40)"


@pytest.fixture
def changer(own) -> Iterator[object]:
    """A table of the test's own (one row), and the connection that changes it
    (as a migration of the next release would, from another process)."""
    changer = _open(own)
    _run(changer, "CREATE TABLE prepare_probe (id int PRIMARY KEY, name varchar(10))")
    _run(changer, "INSERT INTO prepare_probe VALUES (1, 'first')")
    yield changer
    _run(changer, "DROP TABLE prepare_probe")


def _read_until_prepared(wrapper) -> None:
    with prepared_in_server():
        assert _run(wrapper, READ, [1]) == (1, "first")
    assert _prepared(wrapper, READ.replace("%s", "$1")) == 1


def test_a_statement_a_migration_made_stale_is_prepared_again(own, changer):
    """A migration of the next release widens a column while this release still
    runs: a prepared read of it keeps answering (PostgreSQL would refuse it on
    that connection until the connection closed)."""
    wrapper = _open(own)
    _read_until_prepared(wrapper)

    _run(changer, WIDEN)

    with prepared_in_server():
        assert _run(wrapper, READ, [1]) == (1, "first")
        assert _run(wrapper, READ, [1]) == (1, "first")


def test_inside_a_transaction_a_stale_statement_fails_and_the_rollback_clears_it(
    own, changer
):
    """Inside a transaction the failed statement has failed the transaction: it
    is not run again there; after the rollback the next run answers."""
    wrapper = _open(own)
    _read_until_prepared(wrapper)
    _run(changer, WIDEN)

    with (
        prepared_in_server(),
        pytest.raises(errors.FeatureNotSupported) as refused,
        wrapper.connection.transaction(),
    ):
        _run(wrapper, READ, [1])

    assert refused.value.diag.source_function == "RevalidateCachedQuery"
    with prepared_in_server():
        assert _run(wrapper, READ, [1]) == (1, "first")

    assert _run(wrapper, READ, [1]) == (1, "first")


def test_a_statement_with_more_parameters_than_the_protocol_carries_still_runs():
    """65,535 is the most parameters a statement carries bound by the server: a
    longer list has them merged into the statement's text, quoted, as before."""
    organization = Organization.objects.create(
        partner=Partner.objects.create(slug="many", name="Many"),
        slug="many-1",
        name="50% o'clock; %s",
    )
    unknown = range(10**12, 10**12 + 70_000)

    found = Organization.objects.filter(
        pk__in=[*unknown, organization.pk], name="50% o'clock; %s"
    ).values_list("slug", flat=True)

    assert list(found) == ["many-1"]


TIMESTAMPS = [
    "2026-11-26 12:34:56.123456+00",
    "2026-03-29 01:30:00+01",
    "2026-11-26 12:34:56+05:30",
    "1969-12-31 23:59:59.999999-08",
    "0001-01-01 00:00:00+00",
    "9999-12-31 23:59:59.999999+00",
]


def test_timestamps_are_read_by_psycopgs_loader_as_djangos_would_read_them(own):
    """Django registers a timestamptz loader written in Python for every
    connection; the backend gives a connection in UTC psycopg's own (in C with
    psycopg[binary]), which must read every value exactly as Django's does."""
    import datetime

    import psycopg
    from django.conf import settings
    from django.db.backends.postgresql.psycopg_any import get_adapters_template
    from psycopg.pq import Format

    from core.postgresql.base import TIMESTAMPTZ_OID, UtcTimestamptzLoader

    ours = _open(own)
    params = ours.get_connection_params()
    params["context"] = get_adapters_template(settings.USE_TZ, ours.timezone)
    djangos = psycopg.connect(**params)
    try:
        djangos.execute("SET TIME ZONE 'UTC'")
        query = "SELECT %s::timestamptz"
        expected = [djangos.execute(query, [v]).fetchone()[0] for v in TIMESTAMPS]
        with ours.cursor() as cursor:
            read = []
            for value in TIMESTAMPS:
                cursor.execute(query, [value])
                read.append(cursor.fetchone()[0])
            loader = cursor.cursor.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)
    finally:
        djangos.close()
    # Django's loader is in effect on its own connection, ours on the backend's.
    assert djangos.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT).__module__ == (
        "django.db.backends.postgresql.psycopg_any"
    )
    assert loader is UtcTimestamptzLoader
    assert read == expected
    assert [value.tzinfo for value in read] == [datetime.UTC] * len(TIMESTAMPS)
    assert [value.isoformat() for value in read] == [
        value.isoformat() for value in expected
    ]
    if psycopg.pq.__impl__ in ("binary", "c"):
        # The value is read by psycopg's compiled loader, not a Python one.
        assert type(loader(TIMESTAMPTZ_OID, None).load.__self__).__module__ in (
            "psycopg_binary._psycopg",
            "psycopg_c._psycopg",
        )
