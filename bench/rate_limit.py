"""Messages per minute, as the receiving server sees them.

Starts an aiosmtpd sink on loopback and two real Celery worker processes (over
Redis when REDIS_URL is set; PostgreSQL when DATABASE_URL is set), gives one
partner configuration pointing at the sink a limit of ``--rate`` messages per
minute, and queues ``--emails`` alerts of that partner and three of its
organizations (so that batches of several tenants share the one limit, from
both workers at once). Prints the largest number of messages the sink received
in any 60-second window (sliding, by arrival times), how many arrived, how long
it took against the least the rate allows, and how often emails were delayed.

    python bench/rate_limit.py [--emails 300] [--rate 60]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, database_label, setup_django, table, throwaway_database
from bench.pipeline import wait_for_worker
from bench.sink import TimedSink
from tests.support.worker import (
    WorkerProcess,
    database_url_for_test_db,
    deployed_pool,
)

WINDOW = 60.0


def queue(count: int, partner, organizations: list) -> float:
    """Queue ``count`` alerts over the partner and its organizations; returns
    when the first was queued (Unix time)."""
    from smtp.models import EmailKind
    from smtp.services import SystemEmail, send_system_emails

    tenants = [None, *organizations]
    started = time.time()
    emails = [
        SystemEmail(
            EmailKind.ALERT,
            f"oncall{n}@bench.example",
            {"title": f"Disk almost full {n}", "message": "Node 3 is at 91%."},
            partner=partner if tenants[n % len(tenants)] is None else None,
            organization=tenants[n % len(tenants)],
        )
        for n in range(count)
    ]
    for first in range(0, count, 100):
        send_system_emails(emails[first : first + 100])
    return started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emails", type=int, default=300)
    parser.add_argument("--rate", type=int, default=60, help="messages per minute")
    args = parser.parse_args()
    os.environ["SMTP_ALLOWED_NETWORKS"] = "127.0.0.0/8,::1/128"
    os.environ.setdefault("CELERY_QUEUE", f"bench-{uuid.uuid4().hex[:8]}")
    setup_django()

    from audit.models import AuditEvent
    from smtp.models import Email, EmailAttempt, Security, SmtpConfiguration
    from tenants.models import Organization, Partner
    from tests.support.limited_servers import most_in_window

    sink = TimedSink()
    workers: list[WorkerProcess] = []
    try:
        with throwaway_database():
            limiter = "Redis" if os.environ.get("REDIS_URL") else "the database"
            print(
                f"Database: {database_label()}; limiter and broker: {limiter}; "
                f"sink: 127.0.0.1:{sink.port}; {args.emails} emails at "
                f"{args.rate}/min over 2 worker processes"
            )
            partner = Partner.objects.create(slug="bench", name="Bench")
            organizations = [
                Organization.objects.create(
                    partner=partner, slug=f"bench-{n}", name=f"Bench {n}"
                )
                for n in range(3)
            ]
            SmtpConfiguration.objects.create(
                partner=partner,
                host="127.0.0.1",
                port=sink.port,
                security=Security.NONE,
                messages_per_minute=args.rate,
            )
            for number in range(2):
                workers.append(
                    WorkerProcess(
                        queue=os.environ["CELERY_QUEUE"],
                        env={**os.environ, "DATABASE_URL": database_url_for_test_db()},
                        # As deployed (Procfile, deploy/kubernetes).
                        **deployed_pool(),
                        loglevel="WARNING",
                        log_path=ROOT / "var" / f"bench-rate-worker-{number}.log",
                    ).start()
                )
            try:
                wait_for_worker()
                started = queue(args.emails, partner, organizations)
                least = max(0, (args.emails - 1) // args.rate) * WINDOW
                sink.wait_for(args.emails, timeout=least + 300)
                # Anything sent twice would show here.
                time.sleep(2)
            finally:
                # Before the database is dropped: they hold connections to it.
                for worker in workers:
                    worker.stop()
            arrivals = list(sink.accepted.values())
            elapsed = max(arrivals) - started
            most = most_in_window(arrivals, WINDOW)
            emails = Email.objects.all()
            deferrals = sum(emails.values_list("deferrals", flat=True))
            delayed = AuditEvent.objects.filter(type="email.delayed").count()
            by_limit = Counter(
                AuditEvent.objects.filter(type="email.delayed").values_list(
                    "detail__limit", flat=True
                )
            )
            failed_attempts = EmailAttempt.objects.filter(ok=False).count()
            sent = emails.filter(status="sent").count()
    finally:
        for worker in workers:
            worker.stop()
        sink.stop()
    print()
    print(
        table(
            [
                ("largest count in any 60 s window", str(most), f"<= {args.rate}"),
                ("arrived at the sink", str(len(arrivals)), f"= {args.emails}"),
                ("received (duplicates count)", str(sink.count), f"= {args.emails}"),
                ("emails sent (rows)", str(sent), f"= {args.emails}"),
                ("failed attempts", str(failed_attempts), "0"),
                ("delays (deferrals / email.delayed)", f"{deferrals} / {delayed}", ""),
                (
                    "delays by limit",
                    ", ".join(f"{k} {n}" for k, n in sorted(by_limit.items())) or "-",
                    "",
                ),
                ("seconds, first queued to last arrived", f"{elapsed:.0f}", ""),
                ("least the rate allows (s)", f"{least:.0f}", ""),
            ],
            ("measure", "value", "target"),
        )
    )
    ok = most <= args.rate and len(arrivals) == sink.count == args.emails
    print(
        f"\n{'OK' if ok else 'NOT MET'}: at most {args.rate} in any 60 s "
        "window, all arrived"
    )


if __name__ == "__main__":
    main()
