# The events' partner and organization are each the first column of two
# composite indexes (audit_partner_*, audit_org_*): their own indexes only cost
# a write with every event. Only the indexes are dropped: Django's AlterField
# would also drop and re-add the foreign keys, checking every row of the table
# again while writes wait.

import django.db.models.deletion
from django.db import migrations, models

DROPPED = {
    "audit_auditevent_organization_id_4b1fe3b9": "organization_id",
    "audit_auditevent_partner_id_f01b5860": "partner_id",
}


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0002_initial"),
        ("tenants", "0003_session"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="auditevent",
                    name="organization",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="tenants.organization",
                    ),
                ),
                migrations.AlterField(
                    model_name="auditevent",
                    name="partner",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="tenants.partner",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{name}"',
                    reverse_sql=f'CREATE INDEX "{name}" ON "audit_auditevent" ("{column}")',
                )
                for name, column in DROPPED.items()
            ],
        ),
    ]
