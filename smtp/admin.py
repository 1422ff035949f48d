"""Support's read-only view of SMTP configurations (password masked)."""

from __future__ import annotations

from django.contrib import admin

from smtp.models import SmtpConfiguration


@admin.register(SmtpConfiguration)
class SmtpConfigurationAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "partner",
        "organization",
        "host",
        "port",
        "security",
        "username",
        "password_status",
        "updated_at",
    ]
    list_filter = ["security", "partner"]
    list_select_related = ["partner", "organization", "updated_by"]
    search_fields = ["host", "username", "partner__name", "organization__name"]
    # The password is never a form field here, not even masked.
    fields = [
        "partner",
        "organization",
        "host",
        "port",
        "security",
        "use_insecure",
        "username",
        "password_status",
        "retries",
        "sender_email",
        "updated_by",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields

    @admin.display(description="Password")
    def password_status(self, obj: SmtpConfiguration) -> str:
        return "set (hidden)" if obj.password_set else "not set"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
