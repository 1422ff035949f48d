"""Create the demo tenants and users listed in the README (idempotent)."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from tenants.models import Organization, Partner, Role, User
from tenants.services import organization_smtp_feature_set
from tenants.support import SUPPORT_GROUP, ensure_support_group


@dataclass(frozen=True)
class DemoUser:
    email: str
    password: str
    tenant: str  # partner or organization slug; "" for support staff


PARTNERS = {"acme": "Acme Cloud", "globex": "Globex Hosting"}
# slug: (name, partner slug, SMTP feature on)
ORGANIZATIONS = {
    "acme-prod": ("Acme Production", "acme", True),
    "acme-dev": ("Acme Development", "acme", False),
    "globex-main": ("Globex Main", "globex", True),
}
USERS = (
    DemoUser("partner-admin@acme.example", "Acme-Partner-Pass-1", "acme"),
    DemoUser("partner-admin@globex.example", "Globex-Partner-Pass-1", "globex"),
    DemoUser("org-admin@acme-prod.example", "Acme-Prod-Pass-1", "acme-prod"),
    DemoUser("org-admin@acme-dev.example", "Acme-Dev-Pass-1", "acme-dev"),
    DemoUser("org-admin@globex-main.example", "Globex-Main-Pass-1", "globex-main"),
    DemoUser("support@ops.example", "Support-Pass-1", ""),
)


class Command(BaseCommand):
    help = "Create the demo partners, organizations and users (safe to run again)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="Run even with DEBUG=False (the demo passwords are public).",
        )

    @transaction.atomic
    def handle(self, *args, force: bool = False, **options) -> None:
        if not settings.DEBUG and not force:
            raise CommandError(
                "seed_demo creates users with public passwords; it refuses to run "
                "with DEBUG=False. Pass --force if this really is a demo instance."
            )
        partners = {
            slug: self._upsert(Partner, slug=slug, name=name)
            for slug, name in PARTNERS.items()
        }
        organizations = {}
        for slug, (name, partner_slug, enabled) in ORGANIZATIONS.items():
            organization = self._upsert(
                Organization, slug=slug, name=name, partner=partners[partner_slug]
            )
            # Through the service, so that a flag this command changes is audited.
            organization_smtp_feature_set(
                organization=organization, enabled=enabled, actor=None
            )
            organizations[slug] = organization
        ensure_support_group()
        support_group = Group.objects.get(name=SUPPORT_GROUP)
        for demo in USERS:
            fields = {
                "partner": partners.get(demo.tenant),
                "organization": organizations.get(demo.tenant),
                "role": Role.ADMIN,
                "is_staff": demo.tenant == "",
                "is_active": True,
            }
            user = User.objects.filter(email=demo.email).first()
            if user is None:
                user = User.objects.create_user(demo.email, demo.password, **fields)
            else:
                self._update(user, fields)
                if not user.check_password(demo.password):
                    user.set_password(demo.password)
                    user.save(update_fields=["password"])
            if demo.tenant == "":
                user.groups.add(support_group)
        if options.get("verbosity", 1) >= 1:
            self.stdout.write(self.style.SUCCESS("Demo data is in place."))

    def _upsert(self, model, *, slug: str, **fields):
        obj = model.objects.filter(slug=slug).first()
        if obj is None:
            return model.objects.create(slug=slug, **fields)
        self._update(obj, fields)
        return obj

    @staticmethod
    def _update(obj, fields: dict) -> None:
        changed = [
            name for name, value in fields.items() if getattr(obj, name) != value
        ]
        for name in changed:
            setattr(obj, name, fields[name])
        if changed:
            obj.save(update_fields=changed)
