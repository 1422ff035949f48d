"""Writes of the SMTP app (configurations, test emails, system emails)."""

from smtp.services.config import (
    SaveResult,
    smtp_config_delete,
    smtp_config_health_check,
    smtp_config_health_check_targets,
    smtp_config_remove_password,
    smtp_config_save,
)
from smtp.services.emails import (
    TEST_SUBJECT,
    SystemEmail,
    TestEmailBusy,
    TestEmailConflict,
    TestEmailRefused,
    send_system_email,
    send_system_emails,
    smtp_test_email_request,
)
from smtp.services.identity import IdentitySaveResult, sender_domains_save

__all__ = [
    "TEST_SUBJECT",
    "IdentitySaveResult",
    "SaveResult",
    "SystemEmail",
    "TestEmailBusy",
    "TestEmailConflict",
    "TestEmailRefused",
    "send_system_email",
    "send_system_emails",
    "sender_domains_save",
    "smtp_config_delete",
    "smtp_config_health_check",
    "smtp_config_health_check_targets",
    "smtp_config_remove_password",
    "smtp_config_save",
    "smtp_test_email_request",
]
