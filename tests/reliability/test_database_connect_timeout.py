"""A database host that accepts a connection and then says nothing, or drops
the packets, fails the connection after DATABASE_CONNECT_TIMEOUT seconds
instead of holding a request, a probe or a task for TCP's retries; the
keepalives that end a statement whose server vanished are set from
DATABASE_KEEPALIVE_SECONDS (their fault: test_database_vanishes.py)."""

from __future__ import annotations

import ast
import contextlib
import socket
import time
from collections.abc import Iterator

import pytest

from tests.support.hostile import HostileServer
from tests.test_settings import start_django

OPEN_A_CONNECTION = """
import time
from django.db import OperationalError, connection
started = time.monotonic()
try:
    connection.ensure_connection()
except OperationalError as error:
    print("failed after", round(time.monotonic() - started, 1), "s:", error)
else:
    print("connected")
"""


def _say_nothing(connection: socket.socket) -> None:
    """Read what the client sends, answer nothing, until it hangs up."""
    while connection.recv(65536):
        pass


@contextlib.contextmanager
def silent_database() -> Iterator[int]:
    """A port on loopback that accepts connections and never answers."""
    server = HostileServer(_say_nothing)
    try:
        yield server.port
    finally:
        server.stop()


@contextlib.contextmanager
def full_backlog() -> Iterator[int]:
    """A port on loopback whose queue of connections to accept is full: the
    system drops the next connection's packets, as a filtering firewall would."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        time.sleep(0.2)
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def _open(port: int, **env: str | None):
    return start_django(
        f"exec({OPEN_A_CONNECTION!r})",
        DEBUG="true",
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{port}/nowhere",
        **env,
    )


@pytest.mark.parametrize("database", [silent_database, full_backlog])
def test_opening_a_connection_to_a_database_that_never_answers_gives_up(database):
    with database() as port:
        started = time.monotonic()
        result = _open(port, DATABASE_CONNECT_TIMEOUT="2")
        took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "failed after" in result.stdout
    assert "timeout" in result.stdout
    # 2 s of waiting, plus starting Python and Django; TCP's retries take minutes.
    assert took < 20


def _options(**env: str) -> dict:
    shown = start_django(
        "from django.conf import settings; "
        "print(repr(settings.DATABASES['default']['OPTIONS']))",
        DEBUG="true",
        **env,
    )
    assert shown.returncode == 0, shown.stderr
    return ast.literal_eval(shown.stdout.strip().splitlines()[-1])


URL = "postgres://postgres@127.0.0.1:5432/opsconsole"


def test_timeouts_by_default_from_the_variables_and_the_database_urls_own_win():
    default = _options(DATABASE_URL=URL)
    assert {
        key: default[key]
        for key in (
            "connect_timeout",
            "keepalives",
            "keepalives_idle",
            "keepalives_interval",
            "keepalives_count",
            "tcp_user_timeout",
        )
    } == {
        "connect_timeout": 10,
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
        "tcp_user_timeout": 60_000,
    }
    chosen = _options(
        DATABASE_URL=URL, DATABASE_CONNECT_TIMEOUT="7", DATABASE_KEEPALIVE_SECONDS="2"
    )
    assert (chosen["connect_timeout"], chosen["keepalives_idle"]) == (7, 2)
    assert (chosen["keepalives_interval"], chosen["tcp_user_timeout"]) == (1, 4000)
    own = _options(
        DATABASE_URL=f"{URL}?connect_timeout=3&keepalives_idle=5",
        DATABASE_CONNECT_TIMEOUT="7",
        DATABASE_KEEPALIVE_SECONDS="2",
    )
    assert (own["connect_timeout"], own["keepalives_idle"]) == (3, 5)


@pytest.mark.parametrize("value", ["0", "-5"])
@pytest.mark.parametrize(
    "variable", ["DATABASE_CONNECT_TIMEOUT", "DATABASE_KEEPALIVE_SECONDS"]
)
def test_a_timeout_that_would_wait_forever_is_refused_by_name(variable, value):
    result = start_django(DEBUG="true", DATABASE_URL=URL, **{variable: value})
    assert result.returncode != 0
    assert f"{variable} ({value})" in result.stderr
    assert "wait for an unreachable database forever" in result.stderr
