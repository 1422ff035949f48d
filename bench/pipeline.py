"""Email pipeline throughput against a plain smtplib loop, in the same run.

Starts an aiosmtpd sink on loopback and a real Celery worker (over Redis when
REDIS_URL is set; PostgreSQL when DATABASE_URL is set), queues N system emails
through the public service (``send_system_emails``, alerts to 100 recipients
each: outbox rows, SYSTEMAUDIT events, tasks after commit), and measures emails
per second from the first enqueue to the last message the sink accepted, and the
queue-to-accepted latency of each email. The baseline, measured first against
the same sink: one smtplib connection sending the same messages (built by the
worker's code from alerts queued the same way, then rolled back) in a loop.
The sink runs in a process of its own (``bench/sink.py``) and offers PIPELINING
as production servers do (``--no-pipelining``: it does not); smtplib does not
pipeline, the worker does when it is offered.
Prints both and the ratio; for comparison also the same pipeline with one
``send_system_email`` call per email.

Before the worker starts, measures ``send_system_email`` alone, one call per
email, against a raw loop of one ``INSERT`` of an email row, ``COMMIT`` and one
broker publish (a Redis ``LPUSH``), in alternating rounds of the same run, and
prints both rates and their ratio. With the worker running, measures
queue-to-accepted of single emails sent one at a time (nothing else queued).

Then measures Send Test Email: from the click (POST of the SMTP form) to the
result being visible (status final), through the page endpoint and a real worker.

For the baseline and the alerts to 100, also prints the CPU each email cost this
process (sending or queuing, and counting what the sink accepted), the workers,
the sink, PostgreSQL and Redis (read from ``/proc`` before and after, so the
machine should be otherwise quiet): on a host where they share the same cores,
that says what bounds the ratio.

    python bench/pipeline.py [--emails N] [--single N] [--tests N] [--no-pipelining]
"""

from __future__ import annotations

import argparse
import os
import smtplib
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    ROOT,
    T,
    alerts_queue,
    cpu_during,
    cpu_parts,
    database_label,
    percentile,
    setup_django,
    table,
    throwaway_database,
)
from bench.sink import TimedSink
from tests.support.worker import (
    WorkerProcess,
    database_url_for_test_db,
    deployed_pool,
)


def alert_messages(organization, count: int) -> list[tuple[str, str, bytes]]:
    """The envelope sender, recipient and bytes of ``count`` alerts as the
    worker writes them: queued as the pipeline queues them, built by the
    worker's own code, then rolled back (nothing of them stays queued)."""
    from django.db import transaction

    from smtp.outbox.sending import _message, _server_for

    with transaction.atomic():
        emails = alerts_queue(organization, count)
        server = _server_for(emails[0])
        messages = [
            (
                server.envelope_sender(email.sender),
                email.recipient,
                _message(email, server),
            )
            for email in emails
        ]
        transaction.set_rollback(True)
    return messages


def baseline(sink: TimedSink, messages: list[tuple[str, str, bytes]]) -> float:
    """Emails per second of one reused smtplib connection sending the pipeline's
    messages (the yardstick)."""
    before = sink.count
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as client:
        for sender, recipient, message in messages:
            client.sendmail(sender, [recipient], message)
    sink.wait_for(before + len(messages), timeout=60)
    return len(messages) / (time.perf_counter() - started)


def _raw_enqueue(organization, queue: str):
    """One email row INSERTed, COMMITted and its id LPUSHed to Redis, in raw
    SQL on the same connection: the floor of any enqueue."""
    import itertools

    import redis
    from django.db import connection

    from smtp.models import Email

    broker = redis.Redis.from_url(
        os.environ["REDIS_URL"], socket_timeout=10, socket_connect_timeout=10
    )
    proto = Email(
        kind="alert",
        partner=organization.partner,
        organization=organization,
        recipient="oncall@bench.example",
        subject="[ALERT] Disk almost full",
        body="Node 3 is at 91%.",
        message_id="",
    )
    fields = [f for f in Email._meta.concrete_fields if not f.primary_key]
    values = [f.get_db_prep_save(f.pre_save(proto, True), connection) for f in fields]
    at = [f.name for f in fields].index("message_id")
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO smtp_email ({columns}) VALUES ({marks}) RETURNING id"  # noqa: S608
    numbers = itertools.count()

    def call() -> None:
        values[at] = f"<raw-{next(numbers)}-{uuid.uuid4().hex}@bench.example>"
        with connection.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute(sql, values)
            (email_id,) = cursor.fetchone()
            cursor.execute("COMMIT")
        broker.lpush(queue, b'{"email_id": %d}' % email_id)

    return call, broker


def enqueue_alone(organization, count: int, *, rounds: int = 5) -> dict[str, float]:
    """``send_system_email`` calls per second against the raw loop, in
    alternating rounds (the machine's noise hits both alike); nothing consumes
    the queue meanwhile, and what was queued is removed afterwards."""
    from smtp.models import Email, EmailKind, EmailStatus
    from smtp.outbox.publish import emails_handed_over
    from smtp.services import send_system_email

    scratch = f"bench-raw-{uuid.uuid4().hex[:8]}"
    raw, broker = _raw_enqueue(organization, scratch)
    numbers = iter(range(10**9))

    def service() -> None:
        send_system_email(
            kind=EmailKind.ALERT,
            to=f"oncall{next(numbers)}@bench.example",
            context={"title": "Disk almost full", "message": "Node 3 is at 91%."},
            organization=organization,
        )

    spent = {"raw": 0.0, "service": 0.0}
    per_round = max(1, count // rounds)
    for call in (raw, service):  # warm-up: connections, templates, imports
        for _ in range(20):
            call()
    for _ in range(rounds):
        for label, call in (("raw", raw), ("service", service)):
            started = time.perf_counter()
            for _ in range(per_round):
                call()
            if label == "service":
                # Counted until the last id was handed to the broker.
                emails_handed_over()
            spent[label] += time.perf_counter() - started
    calls = per_round * rounds
    # The worker starts later: nothing of this may reach the sink.
    queue = os.environ["CELERY_QUEUE"]
    broker.delete(scratch, queue, *broker.keys(f"smtp:turns:{queue}:*"))
    Email.objects.update(status=EmailStatus.SENT)
    return {
        "raw": calls / spent["raw"],
        "service": calls / spent["service"],
        "ratio": spent["raw"] / spent["service"],
    }


def one_at_a_time(sink: TimedSink, organization, count: int) -> list[float]:
    """Queue-to-accepted (ms) of single emails, each queued once the previous
    one was accepted: the latency when nothing else is queued."""
    from smtp.models import EmailKind
    from smtp.services import send_system_email

    samples = []
    for n in range(count):
        before = sink.count
        started = time.time()
        email = send_system_email(
            kind=EmailKind.ALERT,
            to=f"single{n}@bench.example",
            context={"title": f"Disk almost full {n}", "message": "Node 3 at 91%."},
            organization=organization,
        )
        sink.wait_for(before + 1, timeout=60)
        samples.append((sink.accepted[email.message_id] - started) * 1000)
    return samples


CPU_PARTS = ("this process", "workers", "sink", "PostgreSQL", "Redis")


def cpu_per_email(
    parts: Callable[[str, int, int], str | None], emails: int, run: Callable[[], T]
) -> tuple[T, dict[str, float]]:
    """``run()``'s result, and the milliseconds of CPU each part spent per
    email meanwhile."""
    result, used = cpu_during(parts, run)
    return result, {part: 1000 * used.get(part, 0.0) / emails for part in CPU_PARTS}


def wait_for_worker(timeout: float = 60) -> None:
    from core.models import WorkerHeartbeat
    from core.tasks import heartbeat_task

    heartbeat_task.delay()
    deadline = time.monotonic() + timeout
    while not WorkerHeartbeat.objects.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the worker did not start (see var/bench-worker.log)")
        time.sleep(0.1)


def pipeline(
    sink: TimedSink, count: int, organization, *, fan_out: int
) -> dict[str, float]:
    """Queue ``count`` alerts (``fan_out`` recipients per service call) and time
    them until the sink accepted the last one."""
    from smtp.models import Email

    before = sink.count
    started_wall = time.time()
    started = time.perf_counter()
    alerts_queue(organization, count, fan_out=fan_out)
    enqueued = time.perf_counter() - started
    enqueued_wall = time.time()
    sink.wait_for(before + count, timeout=600)
    elapsed = time.perf_counter() - started
    finished_wall = time.time()
    created = dict(
        Email.objects.filter(created_at__gte=_aware(started_wall)).values_list(
            "message_id", "created_at"
        )
    )
    latencies = [
        (sink.accepted[message_id] - stamp.timestamp()) * 1000
        for message_id, stamp in created.items()
        if message_id in sink.accepted
    ]
    # The sink shares this process's interpreter lock with the loop above: a
    # reply waits for it while alerts are being queued. What arrived once the
    # last one was queued, and how fast, tells the worker side on its own.
    after = sum(
        1 for message_id in created if sink.accepted.get(message_id, 0) > enqueued_wall
    )
    return {
        "rate": count / elapsed,
        "enqueue_rate": count / enqueued,
        "after_enqueue": after,
        "after_rate": after / max(finished_wall - enqueued_wall, 1e-6),
        "p50": percentile(latencies, 0.5),
        "p95": percentile(latencies, 0.95),
        "seconds": elapsed,
    }


def _aware(epoch: float):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch - 1, tz=UTC)


def test_email_latency(sink: TimedSink, user, repeats: int) -> list[float]:
    """Milliseconds from the click (form POST) to a visible final status."""
    from django.test import Client

    from smtp.models import Email

    client = Client()
    client.force_login(user)
    samples = []
    for _ in range(repeats):
        Email.objects.filter(requested_by=user).update(status="sent")  # no 429s
        started = time.perf_counter()
        answer = client.post(
            "/ops/smtp/test",
            {
                "host": "127.0.0.1",
                "port": str(sink.port),
                "retries": "0",
                "recipient": "me@bench.example",
                "mode": "send",
            },
        )
        assert answer.status_code == 202, answer.content
        url = answer.json()["status_url"]
        while client.get(url).json()["status"] not in ("sent", "failed"):
            time.sleep(0.005)
        samples.append((time.perf_counter() - started) * 1000)
        Email.objects.filter(requested_by=user).update(created_at=_aware(0))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emails", type=int, default=2000)
    parser.add_argument(
        "--single", type=int, default=500, help="emails queued one call each"
    )
    parser.add_argument(
        "--alone", type=int, default=1000, help="calls timed for enqueue alone"
    )
    parser.add_argument("--tests", type=int, default=30)
    parser.add_argument(
        "--workers", type=int, default=2, help="worker processes (replicas)"
    )
    parser.add_argument(
        "--no-pipelining",
        action="store_true",
        help="the sink does not offer PIPELINING: every command waits for its reply",
    )
    args = parser.parse_args()
    sink_env = {
        "SMTP_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
        "SMTP_TEST_RATE_PER_MINUTE": "1000000",
    }
    os.environ.update(sink_env)
    os.environ.setdefault("CELERY_QUEUE", f"bench-{uuid.uuid4().hex[:8]}")
    setup_django()

    from tenants.models import Organization, Partner, User

    sink = TimedSink(pipelining=not args.no_pipelining)
    try:
        with throwaway_database():
            broker = "Redis" if os.environ.get("REDIS_URL") else "file-system broker"
            print(
                f"Database: {database_label()}; broker: {broker}; "
                f"sink: 127.0.0.1:{sink.port} "
                f"({'no PIPELINING' if args.no_pipelining else 'offers PIPELINING'})"
            )
            partner = Partner.objects.create(slug="bench", name="Bench")
            organization = Organization.objects.create(
                partner=partner, slug="bench-org", name="Bench Org"
            )
            admin = User.objects.create_user(
                "admin@bench.example", "x" * 12, partner=partner
            )
            # The controller default is the sink (trusted: it comes from the
            # environment), for this process and the worker alike.
            os.environ.update(
                FW_EVENT_SMTP_SERVER_ADDR="127.0.0.1",
                FW_EVENT_SMTP_SERVER_PORT=str(sink.port),
                FW_EVENT_SMTP_SERVER_USE_TLS="false",
            )
            alone = (
                enqueue_alone(organization, args.alone)
                if os.environ.get("REDIS_URL")
                else None
            )
            messages = alert_messages(organization, args.emails)
            # As deployed (Procfile, deploy/kubernetes/worker-deployment.yaml):
            # the pool of the Procfile's worker, and the least number of
            # replicas docs/operations.md asks for.
            workers = [
                WorkerProcess(
                    queue=os.environ["CELERY_QUEUE"],
                    env={**os.environ, "DATABASE_URL": database_url_for_test_db()},
                    **deployed_pool(),
                    loglevel="WARNING",
                    log_path=ROOT / "var" / f"bench-worker-{number}.log",
                ).start()
                for number in range(args.workers)
            ]
            parts = cpu_parts(
                {
                    os.getpid(): "this process",
                    sink.pid: "sink",
                    **{worker.process.pid: "workers" for worker in workers},
                }
            )
            try:
                wait_for_worker()
                base, base_cpu = cpu_per_email(
                    parts, len(messages), lambda: baseline(sink, messages)
                )
                result, result_cpu = cpu_per_email(
                    parts,
                    args.emails,
                    lambda: pipeline(sink, args.emails, organization, fan_out=100),
                )
                single = pipeline(sink, args.single, organization, fan_out=1)
                lone = one_at_a_time(sink, organization, 50)
                tests = test_email_latency(sink, admin, args.tests)
            finally:
                for worker in workers:
                    worker.stop()
    finally:
        sink.stop()
    print()
    print(
        table(
            [
                ("baseline: smtplib, one reused connection", f"{base:.0f}", "", ""),
                (
                    "pipeline: alerts to 100 each -> worker -> sink",
                    f"{result['rate']:.0f}",
                    f"{result['p50']:.0f}",
                    f"{result['p95']:.0f}",
                ),
                (
                    f"pipeline: one call per email ({args.single})",
                    f"{single['rate']:.0f}",
                    f"{single['p50']:.0f}",
                    f"{single['p95']:.0f}",
                ),
            ],
            ("path", "emails/s", "p50 queue-to-accepted ms", "p95 ms"),
        )
    )
    print(
        f"\nenqueue while the worker sends: {result['enqueue_rate']:.0f} emails/s "
        f"in alerts to 100, {single['enqueue_rate']:.0f} emails/s one call each"
    )
    print(
        f"alerts to 100, once the last was queued: {result['after_enqueue']} "
        f"emails at {result['after_rate']:.0f} emails/s (the sink no longer "
        "shares its interpreter with the queuing loop)"
    )
    if alone is not None:
        print(
            f"enqueue alone, one send_system_email call per email: "
            f"{alone['service']:.0f} calls/s; raw INSERT + COMMIT + LPUSH loop: "
            f"{alone['raw']:.0f}/s; ratio {alone['ratio']:.2f}  (target >= 500/s)"
        )
    print(
        f"queue-to-accepted, one email at a time (50): p50 "
        f"{percentile(lone, 0.5):.0f} ms, p95 {percentile(lone, 0.95):.0f} ms"
        "  (target p50 < 50 ms)"
    )
    print(f"ratio (pipeline / baseline): {result['rate'] / base:.2f}  (target >= 0.7)")
    print()
    print(
        table(
            [
                (
                    label,
                    *(f"{used[part]:.2f}" for part in CPU_PARTS),
                    f"{sum(used.values()):.2f}",
                )
                for label, used in (
                    ("baseline: smtplib (this process sends)", base_cpu),
                    ("pipeline: alerts to 100 (this process queues)", result_cpu),
                )
            ],
            ("CPU ms per email", *CPU_PARTS, "all"),
        )
    )
    cores = os.cpu_count() or 1
    print(
        f"{cores} cores: at most {cores * 1000 / sum(result_cpu.values()):.0f} "
        "emails/s for the pipeline if every core were busy with it"
    )
    print(
        f"\nSend Test Email, click to result ({args.tests} tests): "
        f"p50 {percentile(tests, 0.5):.0f} ms, p95 {percentile(tests, 0.95):.0f} ms"
        "  (target p50 < 300 ms)"
    )


if __name__ == "__main__":
    main()
