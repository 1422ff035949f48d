"""Re-encrypt every stored secret with the first key of ``FERNET_KEYS``."""

from __future__ import annotations

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from smtp.fields import EncryptedSecretField

BATCH = 500


class Command(BaseCommand):
    help = (
        "Re-encrypt stored SMTP passwords with the first key of FERNET_KEYS. Run it "
        "after putting a new key first; remove old keys only afterwards."
    )

    def handle(self, *args, **options) -> None:
        total = 0
        for model, field_names in encrypted_fields():
            ids = list(model.objects.order_by("pk").values_list("pk", flat=True))
            for start in range(0, len(ids), BATCH):
                with transaction.atomic():
                    rows = model.objects.select_for_update().filter(
                        pk__in=ids[start : start + BATCH]
                    )
                    for row in rows:
                        # Reading decrypts with any key; saving encrypts with the
                        # first one. No code here handles the plaintext itself.
                        row.save(update_fields=field_names)
                        total += 1
        if options.get("verbosity", 1) >= 1:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Re-encrypted {total} row(s) with the first of "
                    f"{len(settings.FERNET_KEYS)} key(s)."
                )
            )


def encrypted_fields():
    """Every model with encrypted fields, and the names of those fields."""
    for model in apps.get_models():
        names = [
            f.name
            for f in model._meta.concrete_fields
            if isinstance(f, EncryptedSecretField)
        ]
        if names:
            yield model, names
