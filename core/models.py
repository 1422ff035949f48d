"""Process-level state of the deployment."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class WorkerHeartbeat(models.Model):
    """The last time a Celery worker proved it consumes from the broker."""

    worker = models.CharField(max_length=200, unique=True)
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.worker} at {self.seen_at:%Y-%m-%d %H:%M:%S}"


class ApiWait(models.Model):
    """A request that waits right now (``?wait=N``), holding a web server thread.

    Counted per user across every web process. A request that dies without
    removing its row (a killed process) frees the place at ``expires_at``.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["user", "expires_at"], name="api_wait_user")]

    def __str__(self) -> str:
        return f"Wait of user {self.user_id} until {self.expires_at:%H:%M:%S}"
