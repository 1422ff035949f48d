from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from tenants.support import ensure_support_group

        # Sent once per app after migrate; permissions of later apps exist only
        # by the last one, and the handler is idempotent, so it listens to all.
        post_migrate.connect(ensure_support_group, dispatch_uid="ensure_support_group")
