"""Instructions per request of the authenticated reads, against ``/healthz``.

On a host whose speed changes from minute to minute (a shared virtual machine),
timings cannot tell a 10% change from noise. The instructions a request runs
can: ``valgrind --tool=callgrind`` counts them, the same on a busy machine or a
quiet one, and with ``PYTHONHASHSEED=0`` the same from run to run.

Makes a throw-away database (PostgreSQL when DATABASE_URL says so) with a
partner, its organizations, a partner SMTP configuration and ``--events`` audit
events, then, for each path, starts a process under callgrind that calls
Django's WSGI handler as gunicorn does: ``--warmup`` requests with counting
off, then ``--requests`` counted. Prints the instructions per request of
``/healthz``, the authenticated config GET and both documented audit queries,
and each one's ratio to ``/healthz``; and, as floors, of two views that do
nothing (``bench/floor_urls.py``): a plain view through the middleware chain,
and an API view with the session read, as every authenticated read has it.
Counts only the Django process: the database server's work is not in them.

    python bench/instructions.py [--events N] [--requests N] [--warmup N]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.audit_query import ORG_QUERY, PARTNER_QUERY
from bench.common import (
    ROOT,
    database_label,
    setup_django,
    table,
    throwaway_database,
    wsgi_get,
)

CONFIG_URL = "/event/v1/email/config"


def drive(url: str, cookie: str, *, warmup: int, requests: int) -> None:
    """In the process callgrind runs: warm up uncounted, then count."""
    setup_django()
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler

    # The console's URLs and the floors' (this process only).
    settings.ROOT_URLCONF = "bench.floor_urls"

    handler = WSGIHandler()

    def start_response(status: str, headers: list) -> None:
        if not status.startswith("200"):
            raise RuntimeError(f"{url} answered {status}")

    def run(times: int) -> None:
        for _ in range(times):
            body = handler(wsgi_get(url, cookie), start_response)
            b"".join(body)
            body.close()

    run(warmup)
    control = ["callgrind_control", "--instr=on", str(os.getpid())]
    subprocess.run(control, check=True, capture_output=True)
    run(requests)
    control[1] = "--instr=off"
    subprocess.run(control, check=True, capture_output=True)


def counted(url: str, cookie: str, database_url: str, args) -> int:
    """Instructions per request of ``url``, counted by callgrind."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--drive",
            url,
            "--cookie",
            cookie,
            "--warmup",
            str(args.warmup),
            "--requests",
            str(args.requests),
        ]
        env = {**os.environ, "DATABASE_URL": database_url, "PYTHONHASHSEED": "0"}
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True)
        if done.returncode != 0:
            raise RuntimeError(done.stderr.decode(errors="replace")[-2000:])
        totals = re.search(rb"^totals: (\d+)", out.read_bytes(), re.MULTILINE)
        if totals is None:
            raise RuntimeError(f"callgrind wrote no totals for {url}")
        return int(totals.group(1)) // args.requests


def prepare(events: int) -> tuple[str, str]:
    """Tenants, a partner configuration and events; the partner admin's and
    the organization admin's cookies."""
    from bench.audit_query import (
        load_events,
        make_tenants,
        partner_configuration,
        session_cookie,
    )

    partners, organizations, partner_admin, org_admin = make_tenants()
    partner_configuration(partners[0])
    load_events(events, organizations)
    return session_cookie(partner_admin), session_cookie(org_admin)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--drive", help=argparse.SUPPRESS)
    parser.add_argument("--cookie", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        drive(args.drive, args.cookie, warmup=args.warmup, requests=args.requests)
        return
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: install valgrind (apt-get install valgrind).")
    setup_django()
    from bench.floor_urls import FLOOR_API_URL, FLOOR_VIEW_URL
    from tests.support.worker import database_url_for_test_db

    with throwaway_database() as name:
        print(f"Database: {database_label()} ({name}), {args.events:,} audit events")
        partner_cookie, org_cookie = prepare(args.events)
        database_url = database_url_for_test_db()
        paths = [
            ("/healthz", "/healthz", ""),
            ("floor: a view that does nothing", FLOOR_VIEW_URL, partner_cookie),
            ("floor: an API view that does nothing", FLOOR_API_URL, partner_cookie),
            ("authenticated config GET", CONFIG_URL, partner_cookie),
            ("org audit API: documented now-1h, limit 10", ORG_QUERY, org_cookie),
            (
                "partner audit API: documented now-7d, limit 50",
                PARTNER_QUERY,
                partner_cookie,
            ),
        ]
        results = [
            (label, counted(url, cookie, database_url, args))
            for label, url, cookie in paths
        ]
    probe = results[0][1]
    print(
        f"\n{args.requests} requests counted after {args.warmup}, "
        "one thread, PYTHONHASHSEED=0\n"
    )
    rows = [(label, f"{count:,}", f"{count / probe:.1f}") for label, count in results]
    print(table(rows, ("path", "instructions per request", "x /healthz")))


if __name__ == "__main__":
    main()
