"""The database's host vanishes while a statement waits on it (a partition: no
reset, no answer): the client's keepalives fail the statement within about
twice DATABASE_KEEPALIVE_SECONDS, where it waited forever.

The client runs in a network namespace of the test's own and reaches
PostgreSQL through a proxy on the host's end of a veth pair; taking that end's
link down drops every packet between the two, as a partition does. The shared
PostgreSQL is never touched."""

from __future__ import annotations

import os
import queue
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.db import connection

from tests.support.proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="the client reaches PostgreSQL over TCP",
    ),
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("ip") is None,
        reason="network namespaces need root and iproute2",
    ),
]

WAIT_ON_THE_SERVER = """
import time
from django.db import OperationalError, connection
with connection.cursor() as cursor:
    cursor.execute("SELECT 1")
print("connected", flush=True)
started = time.monotonic()
try:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(30)")
except OperationalError as error:
    print("failed after", round(time.monotonic() - started, 1), "s:", error, flush=True)
else:
    print("answered", flush=True)
"""


@dataclass
class Link:
    namespace: str
    host_end: str
    host_address: str


def _ip(*arguments: str) -> None:
    subprocess.run(["ip", *arguments], check=True, capture_output=True, timeout=30)


@pytest.fixture
def link() -> Iterator[Link]:
    """A namespace joined to the host by a veth pair of its own."""
    tag = secrets.token_hex(3)
    octet = int(tag[:2], 16)
    link = Link(f"ocs-vanish-{tag}", f"ov{tag}h", f"10.231.{octet}.1")
    inside = f"ov{tag}n"
    _ip("netns", "add", link.namespace)
    try:
        _ip("link", "add", link.host_end, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", link.namespace)
        _ip("addr", "add", f"{link.host_address}/30", "dev", link.host_end)
        _ip("link", "set", link.host_end, "up")
        inner = ("netns", "exec", link.namespace, "ip")
        _ip(*inner, "addr", "add", f"10.231.{octet}.2/30", "dev", inside)
        _ip(*inner, "link", "set", inside, "up")
        _ip(*inner, "link", "set", "lo", "up")
        yield link
    finally:
        subprocess.run(["ip", "link", "del", link.host_end], capture_output=True)
        subprocess.run(["ip", "netns", "del", link.namespace], capture_output=True)


def _lines(stream, into: queue.Queue) -> None:
    for line in stream:
        into.put(line)
    into.put(None)


@pytest.mark.django_db
def test_a_statement_whose_server_vanished_fails_instead_of_waiting_forever(link):
    database = connection.settings_dict
    proxy = TcpProxy(
        database["HOST"] or "127.0.0.1",
        int(database["PORT"] or 5432),
        listen_host=link.host_address,
    )
    client = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            link.namespace,
            sys.executable,
            "-c",
            f"import django; django.setup(); exec({WAIT_ON_THE_SERVER!r})",
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DJANGO_SETTINGS_MODULE": "opsconsole.settings",
            "DEBUG": "true",
            "DATABASE_URL": (
                f"postgres://{database['USER']}@{link.host_address}:{proxy.port}"
                f"/{database['NAME']}?application_name={link.namespace}"
            ),
            "DATABASE_KEEPALIVE_SECONDS": "1",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    said: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(client.stdout, said), daemon=True).start()
    output: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while "connected\n" not in output:
            line = said.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, "".join(output)
            output.append(line)
        time.sleep(0.5)  # the statement is on its way
        _ip("link", "set", link.host_end, "down")
        vanished = time.monotonic()
        client.wait(timeout=25)  # the statement itself would answer after 30 s
        took = time.monotonic() - vanished
    finally:
        client.kill()
        client.wait()
        proxy.stop()
        # Its server side still sleeps, and would keep the test database open.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s",
                [link.namespace],
            )
    while (line := said.get(timeout=5)) is not None:
        output.append(line)
    text = "".join(output)
    assert "failed after" in text, text
    # Keepalives every second, three unanswered: a few seconds.
    assert took < 15, text
