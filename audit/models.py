"""Append-only audit events: SYSTEMAUDIT (email processing) and AUDIT (user actions)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class Category(models.TextChoices):
    SYSTEMAUDIT = "SYSTEMAUDIT", "SYSTEMAUDIT (email processing)"
    AUDIT = "AUDIT", "AUDIT (user actions)"


class AppendOnlyError(Exception):
    """Raised when code tries to change or delete an audit event."""


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("Audit events are append-only.")

    def delete(self):
        raise AppendOnlyError("Audit events are append-only; see prune_audit.")

    def prune(self) -> int:
        """Delete these events for retention (``manage.py prune_audit``) only."""
        return models.QuerySet.delete(self)[0]


class AuditEvent(models.Model):
    """One thing that happened, told once and never changed."""

    timestamp = models.DateTimeField(default=timezone.now)
    category = models.CharField(max_length=16, choices=Category.choices)
    type = models.CharField(max_length=64)
    # The user's email, or "system" for the delivery engine.
    actor = models.CharField(max_length=254)
    # Not indexed alone: the indexes below start with each (one index fewer
    # to write for every event).
    partner = models.ForeignKey(
        "tenants.Partner",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    organization = models.ForeignKey(
        "tenants.Organization",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    summary = models.CharField(max_length=300)
    detail = models.JSONField(default=dict, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-timestamp", "-id"]
        indexes = [
            # Equality filters first, time last, so a window is one index range
            # read in order (no sort, no scan of other tenants' rows).
            models.Index(
                "partner",
                "category",
                models.F("timestamp").desc(),
                models.F("id").desc(),
                name="audit_partner_cat_time",
            ),
            models.Index(
                "organization",
                "category",
                models.F("timestamp").desc(),
                models.F("id").desc(),
                name="audit_org_cat_time",
            ),
            models.Index(
                "partner",
                models.F("timestamp").desc(),
                models.F("id").desc(),
                name="audit_partner_time",
            ),
            models.Index(
                "organization",
                models.F("timestamp").desc(),
                models.F("id").desc(),
                name="audit_org_time",
            ),
            models.Index("timestamp", name="audit_time"),
        ]

    def __str__(self) -> str:
        return f"{self.timestamp:%Y-%m-%d %H:%M:%S} {self.category} {self.type}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not self._state.adding:
            raise AppendOnlyError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Audit events are append-only.")
