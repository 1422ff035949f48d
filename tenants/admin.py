"""Support's admin: partners and users (organizations: ``accounts.admin``)."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserCreationForm as DjangoUserCreationForm

from tenants.models import Partner, User

admin.site.site_header = "Ops Console support"
admin.site.site_title = "Ops Console support"
admin.site.index_title = "Support"


@admin.register(Partner)
class PartnerAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


class UserCreationForm(DjangoUserCreationForm):
    class Meta:
        model = User
        fields = ["email"]


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    add_form = UserCreationForm
    ordering = ["email"]
    list_display = ["email", "partner", "organization", "role", "is_staff", "is_active"]
    list_filter = ["is_staff", "is_active", "role", "partner"]
    list_select_related = ["partner", "organization"]
    search_fields = ["email", "full_name"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Tenant", {"fields": ["partner", "organization", "role"]}),
        ("Person", {"fields": ["full_name"]}),
        (
            "Support access",
            {"fields": ["is_active", "is_staff", "is_superuser", "groups"]},
        ),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [
        (
            None,
            {
                "classes": ["wide"],
                "fields": ["email", "password1", "password2"],
            },
        ),
    ]
    filter_horizontal = ["groups"]
