"""Shared by the benchmarks: Django set-up on a throw-away database, and statistics.

A benchmark never touches the development database: it creates a fresh test
database (like the test runner) on the configured server and drops it afterwards.
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    # Benchmark-only secrets; DEBUG off, as in production (no query log).
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsconsole.settings")
    os.environ.setdefault("DEBUG", "false")
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-not-for-production")
    os.environ.setdefault("FERNET_KEYS", "bench-only-fernet-key")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
    os.environ.setdefault("SESSION_COOKIE_SECURE", "false")
    # Django's test client speaks plain HTTP.
    os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import logging

    import django

    django.setup()
    logging.getLogger("mail.log").setLevel(logging.WARNING)


def wsgi_get(url: str, cookie: str) -> dict:
    """A GET as gunicorn hands it to the WSGI handler."""
    path, _, query = url.partition("?")
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "127.0.0.1:8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "HTTP_COOKIE": cookie,
        "REMOTE_ADDR": "127.0.0.1",
    }


def database_label() -> str:
    """The database and, on PostgreSQL, whether statements are prepared in the
    server (``DATABASE_PREPARED_STATEMENTS``), for a benchmark's first line."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return connection.vendor
    options = connection.settings_dict.get("OPTIONS", {})
    prepared = "on" if options.get("server_side_binding") else "off"
    return f"postgresql, prepared statements {prepared}"


@contextmanager
def throwaway_database() -> Iterator[str]:
    """A fresh, migrated database for the benchmark, dropped at the end."""
    from django.db import connection

    name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        yield name
    finally:
        connection.creation.destroy_test_db(name, verbosity=0)


def _cpu_ticks(pid: int) -> tuple[str, int, int] | None:
    """A process's name, parent and CPU time so far (user + system, in clock
    ticks), from ``/proc``; ``None`` once it has exited."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    # After the name: state, ppid, ... utime and stime are the 12th and 13th.
    return name, int(fields[1]), int(fields[11]) + int(fields[12])


def _cpu_by_process(
    parts: Callable[[str, int, int], str | None],
) -> dict[int, tuple[str, float]]:
    """The part ``parts(name, pid, parent)`` puts each running process in
    (``None``: not counted) and the CPU seconds it has used so far. Linux only."""
    ticks = os.sysconf("SC_CLK_TCK")
    used_by: dict[int, tuple[str, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        found = _cpu_ticks(int(entry))
        if found is None:
            continue
        name, parent, used = found
        part = parts(name, int(entry), parent)
        if part is not None:
            used_by[int(entry)] = (part, used / ticks)
    return used_by


def cpu_parts(own: dict[int, str]) -> Callable[[str, int, int], str | None]:
    """Which measured part a process is: the processes ``own`` names by id and
    their children, PostgreSQL's and Redis's by name."""

    def part(name: str, pid: int, parent: int) -> str | None:
        if pid in own:
            return own[pid]
        if parent in own:
            return own[parent]
        if name == "postgres":
            return "PostgreSQL"
        if name.startswith("redis-server"):
            return "Redis"
        return None

    return part


def cpu_during(
    parts: Callable[[str, int, int], str | None], run: Callable[[], T]
) -> tuple[T, dict[str, float]]:
    """``run()``'s result, and the CPU seconds each part (``cpu_parts``) spent
    meanwhile."""
    before = _cpu_by_process(parts)
    result = run()
    after = _cpu_by_process(parts)
    # By process: one that exited meanwhile (a database connection closed) is
    # left out, rather than taking what it had used before off its part.
    spent: dict[str, float] = {}
    for pid, (part, used) in after.items():
        spent[part] = spent.get(part, 0.0) + used - before.get(pid, (part, 0.0))[1]
    return result, spent


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def timed(call: Callable[[], object], *, repeat: int, warmup: int = 10) -> list[float]:
    """Milliseconds of each of ``repeat`` calls, after ``warmup`` unmeasured ones."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50": statistics.median(samples),
        "p95": percentile(samples, 0.95),
        "max": max(samples),
    }


def table(rows: list[tuple[str, ...]], headers: tuple[str, ...]) -> str:
    columns = zip(headers, *rows, strict=True)
    widths = [max(len(str(c)) for c in column) for column in columns]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [line.format(*headers), line.format(*("-" * w for w in widths))]
    out.extend(line.format(*row) for row in rows)
    return "\n".join(out)


def alerts_queue(
    organization, count: int, *, fan_out: int = 100, domain: str = "bench.example"
) -> list:
    """Queue ``count`` alerts of ``organization`` to ``oncall<n>@<domain>``,
    ``fan_out`` recipients per ``send_system_emails`` call (one alert to many);
    returns their emails."""
    from smtp.models import EmailKind
    from smtp.services import SystemEmail, send_system_emails

    emails = []
    for first in range(0, count, fan_out):
        emails += send_system_emails(
            [
                SystemEmail(
                    EmailKind.ALERT,
                    f"oncall{n}@{domain}",
                    {"title": f"Disk almost full {n}", "message": "Node 3 is at 91%."},
                    organization=organization,
                )
                for n in range(first, min(count, first + fan_out))
            ]
        )
    return emails
