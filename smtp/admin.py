"""Support's read-only view of SMTP configurations (password masked)."""

from __future__ import annotations

from django.contrib import admin

from core.admin import ReadOnlyModelAdmin
from smtp.models import Email, SmtpConfiguration
from smtp.selectors import email_counters


@admin.register(SmtpConfiguration)
class SmtpConfigurationAdmin(ReadOnlyModelAdmin):
    list_display = [
        "__str__",
        "partner",
        "organization",
        "host",
        "port",
        "security",
        "username",
        "auth_method",
        "password_status",
        "updated_at",
    ]
    list_filter = ["security", "auth_method", "partner"]
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
        "auth_method",
        "oauth2_provider",
        "oauth2_tenant_id",
        "oauth2_client_id",
        "oauth2_secret_status",
        "oauth2_scope",
        "oauth2_token_url",
        "oauth2_client_secret_expires_on",
        "retries",
        "sender_email",
        "client_certificate_status",
        "sender_name",
        "reply_to",
        "bounce_address",
        "updated_by",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields

    @admin.display(description="Password")
    def password_status(self, obj: SmtpConfiguration) -> str:
        return "set (hidden)" if obj.password_set else "not set"

    @admin.display(description="OAuth2 secret or key")
    def oauth2_secret_status(self, obj: SmtpConfiguration) -> str:
        stored = obj.oauth2_client_secret_set or obj.oauth2_service_account_key_set
        return "set (hidden)" if stored else "not set"

    @admin.display(description="Client certificate")
    def client_certificate_status(self, obj: SmtpConfiguration) -> str:
        info = obj.client_certificate
        if info is None:
            return "not set"
        key = "key set (hidden)" if obj.client_key_set else "no key"
        return f"{info.subject}, expires {info.not_after:%Y-%m-%d}; {key}"


@admin.register(Email)
class EmailAdmin(ReadOnlyModelAdmin):
    """The outbox, read-only, with counters of sent and failed emails per level."""

    list_display = [
        "created_at",
        "kind",
        "status",
        "recipient",
        "level_used",
        "server",
        "attempts",
        "failed_step",
        "reply_code",
    ]
    list_filter = ["status", "kind", "level_used"]
    list_select_related = ["partner", "organization"]
    search_fields = ["recipient", "message_id"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    # The body (text and HTML) may hold one-time links: never shown, not even to
    # support.
    exclude = ["body", "html_body", "claim_token"]
    readonly_fields = [
        field.name
        for field in Email._meta.fields
        if field.name not in ("body", "html_body", "claim_token")
    ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "counters": email_counters()}
        return super().changelist_view(request, extra_context=extra_context)
