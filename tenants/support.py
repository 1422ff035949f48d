"""The "Support" group: what support staff may see and change in the admin."""

from __future__ import annotations

SUPPORT_GROUP = "Support"

# (app_label, codename): look at tenants, configurations and the audit log, and
# switch organization feature flags. Nothing else.
SUPPORT_PERMISSIONS = (
    ("tenants", "view_partner"),
    ("tenants", "view_organization"),
    ("tenants", "change_organization"),
    ("tenants", "toggle_feature_flags"),
    ("tenants", "view_user"),
    ("audit", "view_auditevent"),
    ("smtp", "view_smtpconfiguration"),
    ("smtp", "view_email"),
)


def ensure_support_group(**kwargs) -> None:
    """Create or complete the Support group (runs after every ``migrate``)."""
    from django.contrib.auth.models import Group, Permission

    group, _ = Group.objects.get_or_create(name=SUPPORT_GROUP)
    wanted = [
        permission
        for app_label, codename in SUPPORT_PERMISSIONS
        for permission in Permission.objects.filter(
            content_type__app_label=app_label, codename=codename
        )
    ]
    group.permissions.add(*wanted)
