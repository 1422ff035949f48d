"""Audit log queries at scale: the documented APIs against raw SQL, same run.

Loads 1,000,000 events (``--rows 10000000`` for ten million) into a throw-away
database on the configured server (PostgreSQL when DATABASE_URL says so), then
measures through Django's test client, as a browser or curl would hit the API:

- the documented org query (now-1h, limit 10),
- the documented partner query (now-7d, limit 50),
- a keyset page 50,000 rows deep (cursor),
- an OFFSET page 5,000 deep,

and, as baselines, the first page of each documented query as raw SQL on the
same connection. Prints p50/p95 and, for both documented queries, the ratio
API p95 / raw SQL p95.

    python bench/audit_query.py [--rows N] [--repeat N] [--runs N]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    database_label,
    setup_django,
    summary,
    table,
    throwaway_database,
    timed,
)

ORGANIZATIONS_PER_PARTNER = 20
DAYS = 30
ORG_QUERY = (
    "/event/v1/auditlog?&filter.timefrom=now-1h&filter.offset=0&filter.limit=10"
    "&filter.category=SYSTEMAUDIT"
)
PARTNER_QUERY = "/opsauditlogs/?timefrom=now-7d&category=SYSTEMAUDIT&limit=50"


def make_tenants():
    from tenants.models import Organization, Partner, User

    partners = [
        Partner.objects.create(slug=slug, name=slug.title())
        for slug in ("acme", "globex")
    ]
    organizations = [
        Organization.objects.create(
            partner=partner, slug=f"{partner.slug}-{n}", name=f"{partner.slug} {n}"
        )
        for partner in partners
        for n in range(ORGANIZATIONS_PER_PARTNER)
    ]
    partner_admin = User.objects.create_user(
        "bench-partner@acme.example", "x" * 12, partner=partners[0]
    )
    org_admin = User.objects.create_user(
        "bench-org@acme.example", "x" * 12, organization=organizations[0]
    )
    return partners, organizations, partner_admin, org_admin


def load_postgresql(rows: int, organizations) -> None:
    """One INSERT ... SELECT over generate_series: the fastest bulk insert. The
    table's secondary indexes are dropped first and built again after (as a
    restore does): maintaining them row by row at random times is what makes
    ten million rows slow."""
    from django.db import connection

    org_ids = [o.pk for o in organizations] + [None]
    partner_ids = [o.partner_id for o in organizations] + [organizations[0].partner_id]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint)",
            ["audit_auditevent"],
        )
        indexes = cursor.fetchall()
        for name, _definition in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute(
            """
            INSERT INTO audit_auditevent
                (timestamp, category, type, actor, partner_id, organization_id,
                 summary, detail)
            SELECT now() - random() * make_interval(days => %s),
                   CASE WHEN g %% 10 < 7 THEN 'SYSTEMAUDIT' ELSE 'AUDIT' END,
                   CASE WHEN g %% 10 < 7
                        THEN (ARRAY['email.queued','email.sent','email.deferred',
                                    'email.failed'])[1 + g %% 4]
                        ELSE 'smtp_config.updated' END,
                   'system',
                   (%s::bigint[])[1 + g %% %s],
                   (%s::bigint[])[1 + g %% %s],
                   'Benchmark event ' || g,
                   jsonb_build_object('email_id', g)
            FROM generate_series(1, %s) AS g
            """,
            [DAYS, partner_ids, len(partner_ids), org_ids, len(org_ids), rows],
        )
        cursor.execute("SET maintenance_work_mem = '256MB'")
        for _name, definition in indexes:
            cursor.execute(definition)
        # Steady state of an append-only table: autovacuum (PostgreSQL 13+ vacuums
        # insert-only tables) keeps the visibility map current, so capped counts
        # are index-only scans.
        cursor.execute("VACUUM ANALYZE audit_auditevent")


def load_in_batches(rows: int, organizations) -> None:
    """bulk_create in batches (SQLite, or any database without generate_series)."""
    import random

    from django.utils import timezone

    from audit.models import AuditEvent

    rng = random.Random(7)  # benchmark data, not security
    now = timezone.now()
    choices = [(o.partner_id, o.pk) for o in organizations]
    choices.append((organizations[0].partner_id, None))
    batch = []
    for g in range(1, rows + 1):
        partner_id, organization_id = choices[g % len(choices)]
        system = g % 10 < 7
        batch.append(
            AuditEvent(
                timestamp=now - timedelta(seconds=rng.random() * DAYS * 86400),
                category="SYSTEMAUDIT" if system else "AUDIT",
                type=("email.queued", "email.sent", "email.deferred", "email.failed")[
                    g % 4
                ]
                if system
                else "smtp_config.updated",
                actor="system",
                partner_id=partner_id,
                organization_id=organization_id,
                summary=f"Benchmark event {g}",
                detail={"email_id": g},
            )
        )
        if len(batch) == 10_000:
            AuditEvent.objects.bulk_create(batch)
            batch = []
    if batch:
        AuditEvent.objects.bulk_create(batch)


def load_events(rows: int, organizations) -> None:
    """``rows`` events over the organizations' last 30 days, the fastest way
    the database allows."""
    from django.db import connection

    if connection.vendor == "postgresql":
        load_postgresql(rows, organizations)
    else:
        load_in_batches(rows, organizations)


def partner_configuration(partner) -> None:
    """The partner's SMTP configuration that the authenticated config GET reads."""
    from smtp.models import Security, SmtpConfiguration

    SmtpConfiguration.objects.create(
        partner=partner,
        host="smtp.acme.example",
        port=587,
        security=Security.STARTTLS,
        username="relay@acme.example",
        password="relay-password",
        sender_email="noreply@acme.example",
    )


def session_cookie(user) -> str:
    """A ``Cookie`` header value carrying a new session of ``user``."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    return f"{name}={client.cookies[name].value}"


def deep_cursor(partner_id: int, depth: int) -> tuple[str, int]:
    """A cursor ``depth`` events into the partner's documented window, or half
    way into it when it holds fewer (a small ``--rows``); and that depth."""
    from django.db import connection
    from django.utils import timezone

    from audit.query import encode_cursor

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM audit_auditevent WHERE partner_id = %s AND "
            "category = 'SYSTEMAUDIT' AND timestamp >= %s",
            [partner_id, timezone.now() - timedelta(days=7)],
        )
        depth = max(1, min(depth, cursor.fetchone()[0] // 2))
        cursor.execute(
            "SELECT timestamp, id FROM audit_auditevent WHERE partner_id = %s AND "
            "category = 'SYSTEMAUDIT' AND timestamp >= %s ORDER BY timestamp DESC, "
            "id DESC LIMIT 1 OFFSET %s",
            [partner_id, timezone.now() - timedelta(days=7), depth - 1],
        )
        stamp, event_id = cursor.fetchone()
    return encode_cursor(stamp, event_id), depth


def raw_first_page(*, column: str, tenant_id: int, window: timedelta, limit: int):
    """A documented query's first page, as raw SQL on the same connection
    (baseline): ``column`` is organization_id or partner_id."""
    from django.db import connection
    from django.utils import timezone

    sql = (
        "SELECT e.id, e.timestamp, e.category, e.type, e.actor, p.slug, "  # noqa: S608
        "o.slug, e.summary, e.detail FROM audit_auditevent e "
        "LEFT JOIN tenants_partner p ON p.id = e.partner_id "
        "LEFT JOIN tenants_organization o ON o.id = e.organization_id "
        f"WHERE e.{column} = %s AND e.category = 'SYSTEMAUDIT' "
        "AND e.timestamp >= %s AND e.timestamp <= %s "
        "ORDER BY e.timestamp DESC, e.id DESC LIMIT %s"
    )

    def run() -> None:
        now = timezone.now()
        with connection.cursor() as cursor:
            cursor.execute(sql, [tenant_id, now - window, now, limit + 1])
            cursor.fetchall()

    return run


def explain_first_page(organization_id: int) -> str:
    from django.db import connection
    from django.utils import timezone

    if connection.vendor != "postgresql":
        return ""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            "EXPLAIN SELECT * FROM audit_auditevent WHERE organization_id = %s AND "
            "category = 'SYSTEMAUDIT' AND timestamp >= %s AND timestamp <= %s "
            "ORDER BY timestamp DESC, id DESC LIMIT 11",
            [organization_id, now - timedelta(hours=1), now],
        )
        return "\n".join(row[0] for row in cursor.fetchall()[:3])


def measure(measured: dict, *, repeat: int) -> None:
    """Time every call and print the table and both ratios."""
    # Rounds alternate the calls, so that the machine's noise hits each alike.
    samples: dict[str, list[float]] = {label: [] for label in measured}
    rounds = 5
    for _ in range(rounds):
        for label, call in measured.items():
            samples[label] += timed(call, repeat=max(1, repeat // rounds))
    results = {label: summary(values) for label, values in samples.items()}
    rows = [
        (label, f"{r['p50']:.2f}", f"{r['p95']:.2f}", f"{r['max']:.2f}")
        for label, r in results.items()
    ]
    print()
    print(table(rows, ("query", "p50 ms", "p95 ms", "max ms")))
    print()
    for level, api_label in (
        ("org", "org API: documented now-1h, limit 10"),
        ("partner", "partner API: documented now-7d, limit 50"),
    ):
        api = results[api_label]["p95"]
        raw = results[f"baseline: {level} first page as raw SQL"]["p95"]
        print(
            f"ratio ({level} API p95 / raw SQL p95 of the same page): "
            f"{api / raw:.1f}  (target <= 3)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument(
        "--runs", type=int, default=1, help="measurements of the same loaded data"
    )
    args = parser.parse_args()
    setup_django()
    from django.test import Client

    with throwaway_database() as name:
        print(f"Database: {database_label()} ({name}), {args.rows:,} events")
        partners, organizations, partner_admin, org_admin = make_tenants()
        started = time.perf_counter()
        load_events(args.rows, organizations)
        print(f"Loaded in {time.perf_counter() - started:.1f} s")

        org_client = Client()
        org_client.force_login(org_admin)
        partner_client = Client()
        partner_client.force_login(partner_admin)
        cursor, depth = deep_cursor(partners[0].pk, 50_000)

        def get(client, url):
            def call():
                response = client.get(url)
                assert response.status_code == 200, response.content[:300]

            return call

        measured = {
            "org API: documented now-1h, limit 10": get(org_client, ORG_QUERY),
            "partner API: documented now-7d, limit 50": get(
                partner_client, PARTNER_QUERY
            ),
            f"partner API: keyset page {depth:,} deep": get(
                partner_client, f"{PARTNER_QUERY}&cursor={cursor}"
            ),
            "partner API: OFFSET page 5,000 deep": get(
                partner_client, f"{PARTNER_QUERY}&offset=5000"
            ),
            "baseline: org first page as raw SQL": raw_first_page(
                column="organization_id",
                tenant_id=organizations[0].pk,
                window=timedelta(hours=1),
                limit=10,
            ),
            "baseline: partner first page as raw SQL": raw_first_page(
                column="partner_id",
                tenant_id=partners[0].pk,
                window=timedelta(days=7),
                limit=50,
            ),
        }
        for run in range(1, args.runs + 1):
            if args.runs > 1:
                print(f"\nRun {run} of {args.runs}")
            measure(measured, repeat=args.repeat)
        plan = explain_first_page(organizations[0].pk)
        if plan:
            print(f"\nPlan of the org query:\n{plan}")


if __name__ == "__main__":
    main()
