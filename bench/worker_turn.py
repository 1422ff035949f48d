"""What a worker spends per email on the bulk lane, measured in-process.

Queues N alerts (alerts to 100 recipients each, through ``send_system_emails``)
with nothing consuming them, then runs the turn task's body
(``outbox_deliver_turn``) in this process, one turn after the other, against an
aiosmtpd sink in a process of its own (``bench/sink.py``), until none is due.
Prints the worker's emails per second, SQL queries and Redis commands per email, and
with ``--profile`` the top frames of a cProfile run of the same turns (with
``--clock cpu``, of the CPU time alone).

    python bench/worker_turn.py [--emails N] [--profile [--clock cpu]] [--top N]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import re
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import alerts_queue, setup_django, throwaway_database
from bench.sink import TimedSink


class RedisCount:
    """Counts the commands this process sends to Redis (one per round trip;
    a script's EVALSHA is one)."""

    def __init__(self) -> None:
        import redis

        self.count = 0
        self._original = redis.Redis.execute_command
        counter = self

        def counted(client, *args, **options):
            counter.count += 1
            return counter._original(client, *args, **options)

        redis.Redis.execute_command = counted

    def stop(self) -> None:
        import redis

        redis.Redis.execute_command = self._original


class QueryLog:
    """A database execute wrapper: each statement's start and seconds."""

    def __init__(self) -> None:
        self.log: list[tuple[str, float]] = []

    def __len__(self) -> int:
        return len(self.log)

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.log.append((sql[:120], time.perf_counter() - started))


def _queue(organization, count: int) -> None:
    from smtp.outbox.publish import emails_handed_over

    alerts_queue(organization, count)
    emails_handed_over()


def _turns(organization) -> int:
    from smtp.outbox import outbox_deliver_turn
    from smtp.outbox.turns import bulk_due

    turns = 0
    while bulk_due(organization.partner_id, organization.pk):
        outbox_deliver_turn(
            partner_id=organization.partner_id, organization_id=organization.pk
        )
        turns += 1
    return turns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emails", type=int, default=2000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="what --profile times: elapsed time, or this thread's CPU time",
    )
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--save", default="", help="write the profile to this file")
    args = parser.parse_args()
    os.environ.setdefault("CELERY_QUEUE", f"bench-turn-{uuid.uuid4().hex[:8]}")
    os.environ["SMTP_ALLOWED_NETWORKS"] = "127.0.0.0/8,::1/128"
    setup_django()
    from django.db import connection

    from core.redis import shared_redis
    from smtp.models import Email, EmailStatus
    from tenants.models import Organization, Partner

    sink = TimedSink()
    os.environ.update(
        FW_EVENT_SMTP_SERVER_ADDR="127.0.0.1",
        FW_EVENT_SMTP_SERVER_PORT=str(sink.port),
        FW_EVENT_SMTP_SERVER_USE_TLS="false",
    )
    queue = os.environ["CELERY_QUEUE"]
    try:
        with throwaway_database():
            partner = Partner.objects.create(slug="bench", name="Bench")
            organization = Organization.objects.create(
                partner=partner, slug="bench-org", name="Bench Org"
            )
            # Warm-up: imports, templates, the first session.
            _queue(organization, 100)
            _turns(organization)
            _queue(organization, args.emails)
            redis_calls = RedisCount()
            # The CPU clock leaves out the waits for the sink, PostgreSQL and
            # Redis: what is left is what this process spends itself.
            clock = time.thread_time if args.clock == "cpu" else time.perf_counter
            profiler = cProfile.Profile(clock) if args.profile else None
            started, cpu = time.perf_counter(), time.process_time()
            queries = QueryLog()
            with connection.execute_wrapper(queries):
                if profiler:
                    profiler.enable()
                turns = _turns(organization)
                if profiler:
                    profiler.disable()
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu
            redis_calls.stop()
            sent = Email.objects.filter(status=EmailStatus.SENT).count() - 100
            client = shared_redis()
            if client is not None:
                client.delete(queue, *client.keys(f"smtp:turns:{queue}:*"))
    finally:
        sink.stop()
    print(
        f"{sent} of {args.emails} emails sent in {turns} turns, {elapsed:.2f} s: "
        f"{sent / elapsed:.0f} emails/s on one thread"
        f"{' (under cProfile)' if profiler else ''}"
    )
    print(
        f"per email: {len(queries) / sent:.2f} SQL queries, "
        f"{redis_calls.count / sent:.2f} Redis commands, "
        f"{elapsed / sent * 1000:.3f} ms, of which this process's CPU "
        f"{cpu / sent * 1000:.3f} ms"
    )
    shapes: dict[str, list[float]] = {}
    for sql, seconds in queries.log:
        shapes.setdefault(re.sub(r"\s+", " ", sql)[:90], []).append(seconds)
    print("\nqueries by time spent (count, ms in all, the statement's start):")
    for shape, times in sorted(shapes.items(), key=lambda item: -sum(item[1]))[:8]:
        print(f"{len(times):6d} {sum(times) * 1000:8.0f}  {shape}")
    if profiler and args.save:
        profiler.dump_stats(args.save)
    if profiler:
        for order in ("tottime", "cumulative"):
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats(order).print_stats(args.top)
            print(f"\n-- top {args.top} by {order} --")
            print(out.getvalue().split("\n\n", 2)[-1].rstrip())


if __name__ == "__main__":
    main()
