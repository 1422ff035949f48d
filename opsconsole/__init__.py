"""Ops Console: route a cloud provider's system emails through its own SMTP servers."""

from opsconsole.celery import app as celery_app

__all__ = ("celery_app",)
