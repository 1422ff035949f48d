"""Fairness between tenants: a person's password reset while another tenant floods.

Starts the workers as the Procfile runs them (``worker``: both lanes on threads;
``worker-interactive``: the interactive lane only) over Redis and PostgreSQL
(``REDIS_URL``, ``DATABASE_URL``), and an aiosmtpd sink on loopback that takes
about 2 ms a message per connection (~500 messages/s on one connection). Then:

1. tenant B alone: 50 password resets, one every 100 ms; the queue-to-accepted
   latency of each (p50/p95/p99);
2. tenant A alone: N alerts (``--flood``, 20,000) queued through the service in
   alerts to 100 recipients; A's throughput from the first enqueue to the last
   message accepted;
3. both: A's N alerts again, and while they are being queued and sent, B's 50
   resets one every 100 ms.

A's alerts are queued from a process of their own (another application's
requests), B's from this one.

Prints B's percentiles with and without the flood and the ratio of the p99s
(target: p99 < 1 s and ratio < 3), and A's throughput during B's requests as a
ratio to A alone (target >= 0.9).

    python bench/fairness.py [--flood N] [--resets N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    ROOT,
    alerts_queue,
    database_label,
    percentile,
    setup_django,
    table,
    throwaway_database,
)
from bench.pipeline import wait_for_worker
from bench.sink import TimedSink
from tests.support.worker import WorkerProcess, database_url_for_test_db, deployed_pool

PER_MESSAGE = 0.002


def resets(sink: TimedSink, organization, count: int, interval: float) -> list[float]:
    """``count`` password resets of one tenant, one every ``interval`` seconds;
    the queue-to-accepted latency of each, in ms."""
    from smtp.models import EmailKind
    from smtp.services import send_system_email

    started: dict[str, float] = {}
    for n in range(count):
        at = time.time()
        email = send_system_email(
            kind=EmailKind.PASSWORD_RESET,
            to=f"person{n}@tenant-b.example",
            context={"link": f"https://console.example/r/{n}", "expires_in": "1 h"},
            organization=organization,
        )
        started[email.message_id] = at
        time.sleep(max(0.0, interval - (time.time() - at)))
    deadline = time.monotonic() + 120
    while not all(message_id in sink.accepted for message_id in started):
        if time.monotonic() > deadline:
            raise TimeoutError("not every reset reached the sink")
        time.sleep(0.01)
    return [(sink.accepted[m] - at) * 1000 for m, at in started.items()]


def _queue_alerts(organization_id: int, count: int) -> None:
    """Queue ``count`` alerts of one tenant, in alerts to 100 each (in a process
    of its own: tenant A's application, not the one timing tenant B)."""
    from django.db import connections

    from smtp.outbox.publish import emails_handed_over
    from tenants.models import Organization

    organization = Organization.objects.select_related("partner").get(
        pk=organization_id
    )
    alerts_queue(organization, count, domain="tenant-a.example")
    emails_handed_over()
    connections.close_all()


def flood(sink: TimedSink, organization, count: int) -> float:
    """Tenant A queues ``count`` alerts from a process of its own; emails per
    second until the sink accepted the last one."""
    from django.db import connections

    before = sink.count
    # The child gets connections of its own.
    connections.close_all()
    queuing = multiprocessing.get_context("fork").Process(
        target=_queue_alerts, args=(organization.pk, count)
    )
    started = time.perf_counter()
    queuing.start()
    sink.wait_for(before + count, timeout=1800)
    elapsed = time.perf_counter() - started
    queuing.join(60)
    return count / elapsed


def stats(samples: list[float]) -> dict[str, float]:
    return {
        "p50": percentile(samples, 0.5),
        "p95": percentile(samples, 0.95),
        "p99": percentile(samples, 0.99),
    }


def _stop(workers: list[WorkerProcess]) -> None:
    """Stop the workers (before their database is dropped)."""
    while workers:
        workers.pop().stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flood", type=int, default=20000)
    parser.add_argument("--resets", type=int, default=50)
    args = parser.parse_args()
    if not os.environ.get("REDIS_URL"):
        print("bench/fairness.py: skipped, it needs REDIS_URL (and DATABASE_URL).")
        return
    os.environ.update(SMTP_ALLOWED_NETWORKS="127.0.0.0/8,::1/128")
    os.environ.setdefault("CELERY_QUEUE", f"bench-{uuid.uuid4().hex[:8]}")
    setup_django()
    from django.db import connections

    from smtp.outbox.publish import emails_handed_over
    from tenants.models import Organization, Partner

    sink = TimedSink(delay=PER_MESSAGE)
    workers: list[WorkerProcess] = []
    try:
        with throwaway_database():
            print(
                f"Database: {database_label()}; broker: Redis; "
                f"sink: 127.0.0.1:{sink.port}, {PER_MESSAGE * 1000:.0f} ms a message"
            )
            tenants = {}
            for name in ("a", "b"):
                partner = Partner.objects.create(slug=f"tenant-{name}", name=name)
                tenants[name] = Organization.objects.create(
                    partner=partner, slug=f"tenant-{name}-org", name=f"{name} org"
                )
            # Both tenants inherit the controller default: the sink.
            os.environ.update(
                FW_EVENT_SMTP_SERVER_ADDR="127.0.0.1",
                FW_EVENT_SMTP_SERVER_PORT=str(sink.port),
                FW_EVENT_SMTP_SERVER_USE_TLS="false",
            )
            env = {**os.environ, "DATABASE_URL": database_url_for_test_db()}
            queue = os.environ["CELERY_QUEUE"]
            pool = deployed_pool()
            workers = [
                WorkerProcess(
                    queue=queue,
                    env=env,
                    loglevel="WARNING",
                    log_path=ROOT / "var" / "bench-fairness-worker.log",
                    **pool,
                ).start(),
                WorkerProcess(
                    queue=queue,
                    env=env,
                    pool="threads",
                    concurrency=8,
                    loglevel="WARNING",
                    log_path=ROOT / "var" / "bench-fairness-interactive.log",
                    interactive_only=True,
                ).start(),
            ]
            wait_for_worker()
            resets(sink, tenants["b"], 5, 0.05)  # warm-up
            quiet = resets(sink, tenants["b"], args.resets, 0.1)
            alone = flood(sink, tenants["a"], args.flood)
            during: dict[str, object] = {}

            def flood_of_a() -> None:
                try:
                    during["rate"] = flood(sink, tenants["a"], args.flood)
                finally:
                    connections.close_all()  # this thread's

            thread = threading.Thread(target=flood_of_a)
            thread.start()
            time.sleep(2)  # the flood is queued and being sent
            loud = resets(sink, tenants["b"], args.resets, 0.1)
            thread.join()
            emails_handed_over()
            _stop(workers)
    finally:
        _stop(workers)
        sink.stop()
    quiet_stats, loud_stats = stats(quiet), stats(loud)
    print(
        f"\nWorkers: worker ({pool['pool']}, {pool['concurrency']}) and "
        "worker-interactive (threads, 8), as in the Procfile\n"
    )
    print(
        table(
            [
                (
                    f"B: {args.resets} resets, no flood",
                    *(f"{quiet_stats[k]:.0f}" for k in ("p50", "p95", "p99")),
                ),
                (
                    f"B: {args.resets} resets during A's {args.flood} alerts",
                    *(f"{loud_stats[k]:.0f}" for k in ("p50", "p95", "p99")),
                ),
            ],
            ("tenant B queue-to-accepted", "p50 ms", "p95 ms", "p99 ms"),
        )
    )
    ratio = loud_stats["p99"] / quiet_stats["p99"]
    print(
        f"\nB's p99 with flood: {loud_stats['p99']:.0f} ms (target < 1000); "
        f"p99 with flood / without: {ratio:.2f} (target < 3)"
    )
    rate = float(during["rate"])
    print(
        f"A's throughput: alone {alone:.0f} emails/s, during B's resets {rate:.0f} "
        f"emails/s; ratio {rate / alone:.2f} (target >= 0.9)"
    )


if __name__ == "__main__":
    main()
