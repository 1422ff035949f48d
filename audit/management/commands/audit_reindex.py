"""Copy recent audit events into Elasticsearch again (after an outage)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from audit.index import index_events, search_enabled
from audit.models import AuditEvent
from audit.timeexpr import TimeExpressionError, parse_age

BATCH = 2_000


class Command(BaseCommand):
    help = "Index the audit events of the last --since (e.g. 7d) in Elasticsearch."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--since", default="7d", help="Age like 7d or 24h.")

    def handle(self, *args, since: str, **options) -> None:
        if not search_enabled():
            raise CommandError(
                "Elasticsearch is not configured: set ELASTIC_SEARCH_FQDN, "
                "ES_USER_NAME and ES_PASSWORD."
            )
        try:
            cutoff = timezone.now() - parse_age(since, name="--since")
        except TimeExpressionError as error:
            raise CommandError(str(error)) from error
        ids = AuditEvent.objects.filter(timestamp__gte=cutoff).values_list(
            "id", flat=True
        )
        total = 0
        batch: list[int] = []
        for event_id in ids.iterator(chunk_size=BATCH):
            batch.append(event_id)
            if len(batch) == BATCH:
                total += index_events(batch)
                batch = []
        if batch:
            total += index_events(batch)
        self.stdout.write(self.style.SUCCESS(f"Indexed {total} event(s)."))
