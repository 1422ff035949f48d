"""The web tier under load: authenticated reads against /healthz, same server.

Starts gunicorn as production runs it (``gunicorn opsconsole.wsgi:application
--config gunicorn.conf.py``, ``DEBUG=false``; WEB_CONCURRENCY and
GUNICORN_THREADS as set, else 5 workers x 2 threads) on a throw-away database
with a partner, its SMTP configuration and audit events, then drives it with
locust (``--users`` clients, each GETting one path as fast as it answers on a
kept-alive connection, for ``--seconds``), one path at a time, the paths
taking turns (``--rounds`` turns each, so that a host whose speed drifts slows
each path alike):

- ``/healthz`` (no database, no session: the server's ceiling),
- the authenticated ``GET /event/v1/email/config`` (a partner admin's session),
- the documented partner audit query (``now-7d``, limit 50).

Prints req/s, p50/p99 (the worst turn's) and errors of each, and each read's
rate as a fraction of ``/healthz``'s, overall and turn by turn; then the CPU
time each request cost the gunicorn processes, PostgreSQL, Redis and the load
generator (read from ``/proc`` before and after each turn, so the machine
should be otherwise quiet; the load generator's includes its start): on a
host where they all share the same cores, that says which of them bounds the
rate. Then the latency of each path below saturation: 10 clients offering
``--pace`` requests a second in all.

With ``--ceiling``, gunicorn serves ``bench/ceiling_app.py`` instead (the
console's application, plus the config GET's happy path without Django's
request handling, no middleware, DRF or ORM), and the paths include it: the
most that serving that read outside the framework could gain, measured beside
the API's own.

Uses DATABASE_URL / REDIS_URL when set.

    python bench/web_load.py [--users N] [--seconds N] [--rounds N] [--pace R]
                             [--events N] [--runs N] [--ceiling]
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    ROOT,
    cpu_during,
    cpu_parts,
    database_label,
    setup_django,
    table,
    throwaway_database,
)

BENCH = Path(__file__).resolve().parent
CONFIG_PATH = "/event/v1/email/config"
PARTNER_QUERY = "/opsauditlogs/?timefrom=now-7d&category=SYSTEMAUDIT&limit=50"


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


CONSOLE_APP = "opsconsole.wsgi:application"
CEILING_APP = "bench.ceiling_app:application"


def start_gunicorn(
    port: int, database_url: str, log: Path, *, app: str = CONSOLE_APP
) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": os.environ.get("WEB_CONCURRENCY", "5"),
        "GUNICORN_THREADS": os.environ.get("GUNICORN_THREADS", "2"),
        "LOG_LEVEL": "WARNING",
    }
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                app,
                "--config",
                "gunicorn.conf.py",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 180  # a busy machine boots workers slowly
    while True:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/healthz", timeout=2
            ) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise RuntimeError(f"gunicorn did not start; see {log}")
        time.sleep(0.2)


def warm_up(port: int, path: str, cookie: str, *, requests: int = 50) -> None:
    """Requests enough for every gunicorn worker to have loaded the code this
    path runs, so that the measured run does not time a worker's first answer."""
    from concurrent.futures import ThreadPoolExecutor

    def get(_: int) -> None:
        asked = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}", headers={"Cookie": cookie}
        )
        with urllib.request.urlopen(asked, timeout=60) as answer:  # noqa: S310
            if answer.status != 200:
                raise RuntimeError(f"{path} answered {answer.status}")

    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(get, range(requests)))


def _number(value: str) -> float:
    return float(value) if value not in ("", "N/A") else float("nan")


def drive(
    port: int,
    path: str,
    cookie: str,
    *,
    users: int,
    seconds: int,
    server: int,
    pace: float = 0,
) -> dict:
    """Run locust headless against one path (each client at most ``pace``
    requests a second; 0: as fast as answered); its aggregated numbers, and
    the milliseconds of CPU each part spent per request meanwhile (``cpu_ms``)."""
    warm_up(port, path, cookie)
    prefix = ROOT / "var" / f"bench-locust-{port}"
    # locust is this process's only child that ends during the run.
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    _, cpu = cpu_during(
        cpu_parts({server: "gunicorn"}),
        lambda: subprocess.run(
            [
                sys.executable,
                "-m",
                "locust",
                "-f",
                str(BENCH / "locustfile.py"),
                "--headless",
                "--users",
                str(users),
                "--spawn-rate",
                str(users),
                "--run-time",
                f"{seconds}s",
                "--host",
                f"http://127.0.0.1:{port}",
                "--csv",
                str(prefix),
                "--only-summary",
                "--loglevel",
                "ERROR",
            ],
            cwd=ROOT,
            env={
                **os.environ,
                "BENCH_PATH": path,
                "BENCH_COOKIE": cookie,
                "BENCH_PACE": str(pace or ""),
            },
            # locust exits 1 when a request failed: the failures are counted below.
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=seconds + 120,
        ),
    )
    done = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu["load generator"] = (done.ru_utime + done.ru_stime) - (
        children.ru_utime + children.ru_stime
    )
    with open(f"{prefix}_stats.csv", newline="") as stats:
        row = next(r for r in csv.DictReader(stats) if r["Name"] == "Aggregated")
    with open(f"{prefix}_failures.csv", newline="") as failures:
        for failure in csv.DictReader(failures):
            print(f"  {path}: {failure['Occurrences']} x {failure['Error']}")
    requests = int(row["Request Count"])
    return {
        "rate": _number(row["Requests/s"]),
        "p50": _number(row["50%"]),
        "p99": _number(row["99%"]),
        "requests": requests,
        "errors": int(row["Failure Count"]),
        # milliseconds of each part's CPU per request
        "cpu_ms": {part: 1000 * used / max(requests, 1) for part, used in cpu.items()},
    }


def prepare(events: int) -> str:
    """Tenants, a partner configuration and events; the partner admin's cookie."""
    from bench.audit_query import load_events, partner_configuration, session_cookie
    from tenants.models import Organization, Partner, User

    partner = Partner.objects.create(slug="acme", name="Acme")
    organizations = [
        Organization.objects.create(partner=partner, slug=f"acme-{n}", name=f"A {n}")
        for n in range(5)
    ]
    admin = User.objects.create_user("admin@acme.example", "x" * 12, partner=partner)
    partner_configuration(partner)
    load_events(events, organizations)
    return session_cookie(admin)


CPU_PARTS = ("gunicorn", "PostgreSQL", "Redis", "load generator")


def _paths(cookie: str, *, ceiling: bool = False) -> tuple[tuple[str, str, str], ...]:
    paths = (
        ("/healthz", "/healthz", ""),
        (f"GET {CONFIG_PATH} (authenticated)", CONFIG_PATH, cookie),
        ("partner audit query (authenticated)", PARTNER_QUERY, cookie),
    )
    if not ceiling:
        return paths
    from bench.ceiling_app import CEILING_CONFIG_URL

    return (*paths, ("config GET without the framework", CEILING_CONFIG_URL, cookie))


def _combined(slices: list[dict]) -> dict:
    """A path's slices as one: rates averaged (the slices last alike), the
    median p50, the worst p99, requests and errors summed, CPU per request
    over all of them."""
    requests = sum(r["requests"] for r in slices)
    parts = {part for r in slices for part in r["cpu_ms"]}
    return {
        "rate": sum(r["rate"] for r in slices) / len(slices),
        "p50": sorted(r["p50"] for r in slices)[len(slices) // 2],
        "p99": max(r["p99"] for r in slices),
        "requests": requests,
        "errors": sum(r["errors"] for r in slices),
        "cpu_ms": {
            part: sum(r["cpu_ms"].get(part, 0.0) * r["requests"] for r in slices)
            / max(requests, 1)
            for part in parts
        },
    }


def measure(
    port: int,
    paths: tuple[tuple[str, str, str], ...],
    *,
    users: int,
    seconds: int,
    rounds: int,
    server: int,
) -> None:
    """Drive the paths in turn, ``rounds`` times for ``seconds / rounds`` each,
    so that a host whose speed drifts from minute to minute slows each path
    alike; print the table, the ratios to /healthz (each round's too) and the
    CPU per request."""
    slices: dict[str, list[dict]] = {label: [] for label, _, _ in paths}
    for _ in range(rounds):
        for label, path, sent in paths:
            slices[label].append(
                drive(
                    port,
                    path,
                    sent,
                    users=users,
                    seconds=max(1, seconds // rounds),
                    server=server,
                )
            )
    measured = {label: _combined(results) for label, results in slices.items()}
    health = measured["/healthz"]["rate"]
    health_by_round = [r["rate"] for r in slices["/healthz"]]
    print()
    print(
        table(
            [
                (
                    label,
                    f"{r['rate']:.0f}",
                    f"{r['p50']:.0f}",
                    f"{r['p99']:.0f}",
                    f"{r['errors']} of {r['requests']}",
                    f"{r['rate'] / health:.2f}",
                    " ".join(
                        f"{s['rate'] / h:.2f}"
                        for s, h in zip(slices[label], health_by_round, strict=True)
                    ),
                )
                for label, r in measured.items()
            ],
            (
                "path",
                "req/s",
                "p50 ms",
                "p99 ms",
                "errors",
                "of /healthz",
                "each round",
            ),
        )
    )
    print()
    print(
        table(
            [
                (
                    label,
                    *(f"{r['cpu_ms'].get(part, 0.0):.2f}" for part in CPU_PARTS),
                    f"{1000 / max(r['cpu_ms'].get('gunicorn', 0.0), 1e-6):.0f}",
                )
                for label, r in measured.items()
            ],
            (
                "CPU ms per request",
                *CPU_PARTS,
                "req/s per core of gunicorn",
            ),
        )
    )


def measure_paced(
    port: int,
    paths: tuple[tuple[str, str, str], ...],
    *,
    rate: float,
    seconds: int,
    server: int,
) -> None:
    """Latency below saturation: each path at ``rate`` requests a second (10
    clients), the way a latency objective is usually stated. At saturation,
    40 clients waiting on each other's turn make p99 mostly queueing."""
    clients = 10
    rows = []
    for label, path, sent in paths:
        r = drive(
            port,
            path,
            sent,
            users=clients,
            seconds=seconds,
            server=server,
            pace=rate / clients,
        )
        rows.append(
            (
                label,
                f"{r['rate']:.0f}",
                f"{r['p50']:.0f}",
                f"{r['p99']:.0f}",
                f"{r['errors']} of {r['requests']}",
            )
        )
    print()
    print(
        table(
            rows,
            (f"at {rate:.0f} req/s offered", "req/s", "p50 ms", "p99 ms", "errors"),
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="each path's --seconds split into this many turns, the paths taking turns",
    )
    parser.add_argument(
        "--pace",
        type=float,
        default=100,
        help="also measure latency at this offered rate (req/s; 0: not)",
    )
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="also the config GET without the framework (bench/ceiling_app.py)",
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be 1 or more, not {args.rounds}.")
    if args.seconds < 2 * args.rounds:
        # locust reports no rate for a run of one second.
        parser.error(
            f"--seconds {args.seconds} in {args.rounds} turns leaves turns under "
            "2 s, too short for locust to report a rate: give --seconds at least "
            f"{2 * args.rounds}, or fewer --rounds."
        )
    setup_django()
    from django.conf import settings
    from django.db import connection

    from tests.support.worker import database_url_for_test_db

    with throwaway_database():
        cookie = prepare(args.events)
        connection.close()  # gunicorn's workers have the database to themselves
        port = free_port()
        workers = os.environ.get("WEB_CONCURRENCY", "5")
        threads = os.environ.get("GUNICORN_THREADS", "2")
        print(
            f"Database: {database_label()}; sessions: {settings.SESSION_ENGINE}; "
            f"gunicorn {workers} workers x {threads} threads on 127.0.0.1:{port}; "
            f"locust: {args.users} clients for {args.seconds} s per path, in "
            f"{args.rounds} turns; "
            f"{args.events:,} audit events"
        )
        server = start_gunicorn(
            port,
            database_url_for_test_db(),
            ROOT / "var" / "bench-gunicorn.log",
            app=CEILING_APP if args.ceiling else CONSOLE_APP,
        )
        paths = _paths(cookie, ceiling=args.ceiling)
        try:
            for run in range(1, args.runs + 1):
                if args.runs > 1:
                    print(f"\nRun {run} of {args.runs}")
                measure(
                    port,
                    paths,
                    users=args.users,
                    seconds=args.seconds,
                    rounds=args.rounds,
                    server=server.pid,
                )
                if args.pace:
                    measure_paced(
                        port,
                        paths,
                        rate=args.pace,
                        seconds=args.seconds,
                        server=server.pid,
                    )
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    print("\ntarget: authenticated reads >= 0.33 of /healthz, p99 < 100 ms, 0 errors")


if __name__ == "__main__":
    main()
