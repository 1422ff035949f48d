from django.urls import path

from auditlog import apis, views

ops_urlpatterns = [
    path("audit-logs/", views.ops_audit_logs, name="audit-logs"),
    path("audit-logs/export.csv", views.ops_audit_export, name="audit-export"),
]

web_urlpatterns = [
    path("audit-logs/", views.web_audit_logs, name="audit-logs"),
    path("audit-logs/export.csv", views.web_audit_export, name="audit-export"),
]

urlpatterns = [
    path(
        "event/v1/auditlog",
        apis.OrganizationAuditLogApi.as_view(),
        name="api-auditlog",
    ),
    path("opsauditlogs/", apis.PartnerAuditLogApi.as_view(), name="api-opsauditlogs"),
]
