"""Tenancy: partners, their organizations, and users who belong to exactly one."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.module_loading import import_string


class Partner(models.Model):
    """A cloud provider; its admins use the Ops Console."""

    slug = models.SlugField(max_length=63, unique=True)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Organization(models.Model):
    """A customer of a partner; its admins use the Web Console."""

    partner = models.ForeignKey(
        Partner, on_delete=models.PROTECT, related_name="organizations"
    )
    slug = models.SlugField(max_length=63, unique=True)
    name = models.CharField(max_length=200)
    # Feature flag switched by support staff; off by default (documented).
    smtp_configuration_enabled = models.BooleanField(
        "SMTP configuration feature",
        default=False,
        help_text="Lets the organization's admins configure their own SMTP server.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("toggle_feature_flags", "Can toggle an organization's feature flags"),
        ]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    READ_ONLY = "read_only", "Read-only"


class Console(models.TextChoices):
    OPS = "ops", "Ops Console"
    WEB = "web", "Web Console"


def email_key(address: str | None) -> str:
    """An email address as logins compare it: no surrounding spaces, lower case."""
    return (address or "").strip().lower()


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def get_by_natural_key(self, username: str | None) -> User:
        # Email addresses are compared case-insensitively at login.
        return self.get(email__iexact=username)

    def _create_user(self, email: str, password: str | None, **fields) -> User:
        if not email:
            raise ValueError("Users need an email address.")
        user = self.model(email=email.strip().lower(), **fields)
        user.set_password(password)
        user.full_clean(exclude=["password"])
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **fields) -> User:
        fields.setdefault("is_staff", False)
        fields.setdefault("is_superuser", False)
        return self._create_user(email, password, **fields)

    def create_superuser(self, email: str, password: str | None = None, **fields):
        fields["is_staff"] = True
        fields["is_superuser"] = True
        return self._create_user(email, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who logs in with an email address.

    A console user belongs to exactly one tenant: a partner (Ops Console) or an
    organization (Web Console). Support staff are Django staff users without a
    tenant; they work in ``/admin/``.
    """

    email = models.EmailField("email address", max_length=254, unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    partner = models.ForeignKey(
        Partner, null=True, blank=True, on_delete=models.CASCADE, related_name="users"
    )
    organization = models.ForeignKey(
        Organization,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="users",
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ADMIN)
    is_staff = models.BooleanField(
        "support staff",
        default=False,
        help_text="Can log into the admin site (support).",
    )
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    EMAIL_FIELD = "email"
    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(partner__isnull=True)
                | models.Q(organization__isnull=True),
                name="user_belongs_to_at_most_one_tenant",
                violation_error_message=(
                    "A user belongs to a partner or to an organization, not both."
                ),
            ),
            models.UniqueConstraint(Lower("email"), name="user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def console(self) -> Console | None:
        """Which console this user works in, if any."""
        if self.partner_id is not None:
            return Console.OPS
        if self.organization_id is not None:
            return Console.WEB
        return None

    @property
    def is_tenant_admin(self) -> bool:
        return self.role == Role.ADMIN


class Session(AbstractBaseSession):
    """A login session (the ``rsid`` cookie), with the user it belongs to.

    The user is a column, not only a value inside the signed session data, so
    that one query reads an authenticated request's session together with its
    user and tenant (``tenants.sessions``). Deleting a user ends its sessions.
    """

    user = models.ForeignKey(
        User,
        null=True,
        blank=True,
        # The session data says whose session it is; a user deleted while a
        # login is being saved leaves a session nobody can use, not a failed
        # save (the join then finds no user, and the request is anonymous).
        db_constraint=False,
        on_delete=models.CASCADE,
        related_name="+",
    )

    @classmethod
    def get_session_store_class(cls):
        return import_string(f"{settings.SESSION_ENGINE}.SessionStore")


class RateLimitCounter(models.Model):
    """Requests counted under one key, in a window that opens with the first one.

    ``tenants.ratelimit`` counts a request with one INSERT ... ON CONFLICT DO
    UPDATE, so concurrent requests can never both take the last place.
    """

    # A scope and a keyed hash of what is counted (an email address, an IP
    # address): the table never holds the addresses themselves.
    key = models.CharField(max_length=128, unique=True)
    window_started = models.DateTimeField()
    hits = models.PositiveIntegerField()

    class Meta:
        indexes = [
            # Pruning deletes the counters whose window is over.
            models.Index("window_started", name="ratelimit_window_started"),
        ]

    def __str__(self) -> str:
        return f"{self.key}: {self.hits} since {self.window_started:%H:%M:%S}"
