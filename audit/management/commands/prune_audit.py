"""Retention: delete audit events older than an age (off unless asked)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from audit.models import AuditEvent
from audit.timeexpr import TimeExpressionError, parse_age

BATCH = 10_000


class Command(BaseCommand):
    help = (
        "Delete audit events older than --older-than (e.g. 365d). Nothing by default."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--older-than",
            required=True,
            help="Age like 365d, 52w or 720h; events older than this are deleted.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count, delete nothing."
        )

    def handle(self, *args, older_than: str, dry_run: bool, **options) -> None:
        try:
            age = parse_age(older_than, name="--older-than")
        except TimeExpressionError as error:
            raise CommandError(str(error)) from error
        cutoff = timezone.now() - age
        old = AuditEvent.objects.filter(timestamp__lt=cutoff)
        if dry_run:
            self.stdout.write(
                f"{old.count()} event(s) older than {cutoff:%Y-%m-%d %H:%M} UTC."
            )
            return
        deleted = 0
        while True:
            # Small batches: no long transaction, no lock on the whole table.
            ids = list(old.order_by("id").values_list("id", flat=True)[:BATCH])
            if not ids:
                break
            deleted += AuditEvent.objects.filter(pk__in=ids).prune()
        self.stdout.write(
            self.style.SUCCESS(
                f"Deleted {deleted} event(s) older than {cutoff:%Y-%m-%d %H:%M} UTC."
            )
        )
