from django.apps import AppConfig


class AuditLogConfig(AppConfig):
    name = "auditlog"
    verbose_name = "Audit logs"
