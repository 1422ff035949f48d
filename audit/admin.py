"""Support's read-only view of the audit log."""

from __future__ import annotations

from django.contrib import admin

from audit.models import AuditEvent
from core.admin import ReadOnlyModelAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyModelAdmin):
    list_display = ["timestamp", "category", "type", "actor", "partner", "organization"]
    list_filter = ["category", "type"]
    list_select_related = ["partner", "organization"]
    search_fields = ["type", "actor", "summary"]
    date_hierarchy = "timestamp"
    show_full_result_count = False
