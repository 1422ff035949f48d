from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from audit.models import Category
        from audit.registry import register_event_types
        from tenants.support import ensure_support_group

        # The audit events this app records, for the audit pages' type filter.
        register_event_types(
            Category.AUDIT,
            "feature.smtp_configuration.enabled",
            "feature.smtp_configuration.disabled",
            "organization.created",
            "organization.updated",
            "organization.deleted",
            "user.password_set",
        )

        # Sent once per app after migrate; permissions of later apps exist only
        # by the last one, and the handler is idempotent, so it listens to all.
        post_migrate.connect(ensure_support_group, dispatch_uid="ensure_support_group")
