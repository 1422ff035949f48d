"""Support's admin of organizations: feature flags, the SMTP settings in effect.

Here rather than in ``tenants.admin``: the page shows which SMTP settings are in
effect, and moving an organization moves its own SMTP configuration along.
"""

from __future__ import annotations

from django.contrib import admin, messages

from accounts.services import organization_update
from smtp.selectors import smtp_config_effective
from tenants.models import Organization
from tenants.services import (
    ORGANIZATION_FIELDS,
    organization_add,
    organization_delete,
    organization_smtp_feature_set,
)

FLAG_PERMISSION = "tenants.toggle_feature_flags"


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "partner", "smtp_configuration_enabled"]
    list_filter = ["smtp_configuration_enabled", "partner"]
    list_select_related = ["partner"]
    search_fields = ["name", "slug", "partner__name"]
    actions = ["enable_smtp_feature", "disable_smtp_feature"]

    @admin.display(description="SMTP in effect")
    def smtp_in_effect(self, obj: Organization) -> str:
        if obj.pk is None:
            return "—"
        effective = smtp_config_effective(partner=obj.partner, organization=obj)
        if effective.settings is None:
            return "none: no level has a usable configuration"
        s = effective.settings
        return (
            f"{effective.source.label} level: {s.host}:{s.port}, security "
            f"{s.security.label}"
        )

    def get_readonly_fields(self, request, obj=None):
        readonly = ["created_at", "smtp_in_effect"]
        if obj is not None and not request.user.is_superuser:
            # Support switches feature flags; only superusers rename an
            # organization or move it to another partner.
            readonly.extend(ORGANIZATION_FIELDS)
        if not request.user.has_perm(FLAG_PERMISSION):
            readonly.append("smtp_configuration_enabled")
        return readonly

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not request.user.has_perm(FLAG_PERMISSION):
            actions.pop("enable_smtp_feature", None)
            actions.pop("disable_smtp_feature", None)
        return actions

    def save_model(self, request, obj, form, change):
        # Through the services, so that every change is audited.
        if not change:
            organization_add(organization=obj, actor=request.user)
            return
        changed = {
            field: form.cleaned_data[field]
            for field in (*ORGANIZATION_FIELDS, "smtp_configuration_enabled")
            if field in form.changed_data
        }
        organization_update(organization=obj, actor=request.user, **changed)

    def delete_model(self, request, obj):
        organization_delete(organization=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for organization in queryset:
            organization_delete(organization=organization, actor=request.user)

    def _set_flag(self, request, queryset, enabled: bool) -> None:
        changed = sum(
            organization_smtp_feature_set(
                organization=organization, enabled=enabled, actor=request.user
            )
            for organization in queryset
        )
        state = "enabled" if enabled else "disabled"
        self.message_user(
            request,
            f"SMTP configuration {state} for {changed} organization(s).",
            messages.SUCCESS,
        )

    @admin.action(description="Enable SMTP configuration", permissions=["toggle"])
    def enable_smtp_feature(self, request, queryset):
        self._set_flag(request, queryset, True)

    @admin.action(description="Disable SMTP configuration", permissions=["toggle"])
    def disable_smtp_feature(self, request, queryset):
        self._set_flag(request, queryset, False)

    def has_toggle_permission(self, request) -> bool:
        return request.user.has_perm(FLAG_PERMISSION)
