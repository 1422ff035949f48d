from django.apps import AppConfig


class SmtpConfig(AppConfig):
    name = "smtp"
    verbose_name = "SMTP"

    def ready(self) -> None:
        from audit.models import Category
        from audit.registry import register_event_types
        from smtp import worker

        worker.connect_signals()

        # The audit events this app records, for the audit pages' type filter.
        register_event_types(
            Category.SYSTEMAUDIT,
            "email.queued",
            "email.sent",
            "email.verified",
            "email.deferred",
            "email.delayed",
            "email.failed",
            "smtp_config.health.failing",
            "smtp_config.health.recovered",
            "smtp_config.oauth2.secret_expiring",
            "smtp_config.client_certificate.expiring",
            "smtp_config.client_certificate.renewed",
        )
        register_event_types(
            Category.AUDIT,
            "smtp_config.created",
            "smtp_config.updated",
            "smtp_config.deleted",
            "email_identity.updated",
        )
