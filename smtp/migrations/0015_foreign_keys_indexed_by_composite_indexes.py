# Each of these foreign keys is the first column of a composite index
# (email_tenant_due, email_requester, the unique email and number, the unique
# partner and kind, limit_entry_stamp): their own indexes only cost a write
# with every email, attempt and limit entry. Only the indexes are dropped:
# Django's AlterField would also drop and re-add the foreign keys, checking
# every row again while writes wait.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# Index name: table, column, and whether it is PostgreSQL's second index of a
# text key (for LIKE), which only PostgreSQL has.
DROPPED = {
    "smtp_email_partner_id_8975460f": ("smtp_email", "partner_id", False),
    "smtp_email_requested_by_id_90b30bc1": ("smtp_email", "requested_by_id", False),
    "smtp_emailattempt_email_id_06e1ef91": ("smtp_emailattempt", "email_id", False),
    "smtp_emailtextoverride_partner_id_93e36fe1": (
        "smtp_emailtextoverride",
        "partner_id",
        False,
    ),
    "smtp_deliverylimitentry_limit_id_c79c6b69": (
        "smtp_deliverylimitentry",
        "limit_id",
        False,
    ),
    "smtp_deliverylimitentry_limit_id_c79c6b69_like": (
        "smtp_deliverylimitentry",
        "limit_id",
        True,
    ),
}


def drop_indexes(apps, schema_editor):
    quote = schema_editor.quote_name
    for name in DROPPED:
        schema_editor.execute(f"DROP INDEX IF EXISTS {quote(name)}")


def create_indexes(apps, schema_editor):
    quote = schema_editor.quote_name
    postgresql = schema_editor.connection.vendor == "postgresql"
    for name, (table, column, like) in DROPPED.items():
        if like and not postgresql:
            continue
        operator_class = " varchar_pattern_ops" if like else ""
        schema_editor.execute(
            f"CREATE INDEX {quote(name)} ON {quote(table)} "
            f"({quote(column)}{operator_class})"
        )


def foreign_key(**options):
    return models.ForeignKey(db_index=False, **options)


class Migration(migrations.Migration):
    dependencies = [
        ("smtp", "0014_configuration_tested_at"),
        ("tenants", "0003_session"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="email",
                    name="partner",
                    field=foreign_key(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="tenants.partner",
                    ),
                ),
                migrations.AlterField(
                    model_name="email",
                    name="requested_by",
                    field=foreign_key(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AlterField(
                    model_name="emailattempt",
                    name="email",
                    field=foreign_key(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="attempt_log",
                        to="smtp.email",
                    ),
                ),
                migrations.AlterField(
                    model_name="emailtextoverride",
                    name="partner",
                    field=foreign_key(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="email_text_overrides",
                        to="tenants.partner",
                    ),
                ),
                migrations.AlterField(
                    model_name="deliverylimitentry",
                    name="limit",
                    field=foreign_key(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="entries",
                        to="smtp.deliverylimit",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(drop_indexes, create_indexes)],
        ),
    ]
