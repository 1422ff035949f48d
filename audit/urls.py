from django.urls import path

from audit import views

ops_urlpatterns = [
    path("audit-logs/", views.ops_audit_logs, name="audit-logs"),
]

web_urlpatterns = [
    path("audit-logs/", views.web_audit_logs, name="audit-logs"),
]
