"""``manage.py seed_demo``: the README's demo data, idempotent."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from audit.models import AuditEvent
from tenants.models import Organization, Partner, User
from tests.support.auth import can_log_in

pytestmark = pytest.mark.django_db


def snapshot() -> dict[str, set]:
    return {
        "partners": set(Partner.objects.values_list("pk", "slug", "name")),
        "organizations": set(
            Organization.objects.values_list(
                "pk", "slug", "partner__slug", "smtp_configuration_enabled"
            )
        ),
        "users": set(
            User.objects.values_list(
                "pk", "email", "partner__slug", "organization__slug", "role", "is_staff"
            )
        ),
        "audit": set(AuditEvent.objects.values_list("pk", flat=True)),
    }


def test_seed_demo_twice_gives_the_same_rows():
    call_command("seed_demo", "--force", verbosity=0)
    first = snapshot()
    call_command("seed_demo", "--force", verbosity=0)
    assert snapshot() == first
    assert len(first["partners"]) == 2
    assert len(first["organizations"]) == 3
    assert len(first["users"]) == 6


def test_seed_demo_creates_the_documented_tenants_and_logins():
    call_command("seed_demo", "--force", verbosity=0)
    assert {
        (o.slug, o.partner.slug, o.smtp_configuration_enabled)
        for o in (Organization.objects.select_related("partner"))
    } == {
        ("acme-prod", "acme", True),
        ("acme-dev", "acme", False),
        ("globex-main", "globex", True),
    }
    for email, password in [
        ("partner-admin@acme.example", "Acme-Partner-Pass-1"),
        ("partner-admin@globex.example", "Globex-Partner-Pass-1"),
        ("org-admin@acme-prod.example", "Acme-Prod-Pass-1"),
        ("org-admin@acme-dev.example", "Acme-Dev-Pass-1"),
        ("org-admin@globex-main.example", "Globex-Main-Pass-1"),
        ("support@ops.example", "Support-Pass-1"),
    ]:
        assert can_log_in(email, password), email
    support = User.objects.get(email="support@ops.example")
    assert support.is_staff and support.console is None
    assert support.has_perm("tenants.toggle_feature_flags")


def test_seed_demo_repairs_a_changed_demo_password_and_flag():
    call_command("seed_demo", "--force", verbosity=0)
    user = User.objects.get(email="org-admin@acme-dev.example")
    user.set_password("Something-Else-9")
    user.save()
    Organization.objects.filter(slug="acme-prod").update(
        smtp_configuration_enabled=False
    )
    call_command("seed_demo", "--force", verbosity=0)
    assert can_log_in(user.email, "Acme-Dev-Pass-1")
    assert Organization.objects.get(slug="acme-prod").smtp_configuration_enabled


@override_settings(DEBUG=False)
def test_seed_demo_refuses_to_run_without_debug_unless_forced():
    with pytest.raises(CommandError, match="refuses to run with DEBUG=False"):
        call_command("seed_demo", verbosity=0)
    assert not User.objects.exists()
