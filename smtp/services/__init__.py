"""Writes of the SMTP app (configurations, test emails, system emails)."""

from smtp.services.config import (
    SaveResult,
    smtp_config_delete,
    smtp_config_health_check,
    smtp_config_health_check_targets,
    smtp_config_remove_client_certificate,
    smtp_config_remove_password,
    smtp_config_save,
)
from smtp.services.emails import (
    TEST_SUBJECT,
    SystemEmail,
    TestedSave,
    TestEmailBusy,
    TestEmailConflict,
    TestEmailRefused,
    email_preview_send,
    send_system_email,
    send_system_emails,
    smtp_config_save_tested,
    smtp_test_email_request,
)
from smtp.services.identity import (
    BrandingInput,
    IdentitySaveResult,
    email_branding_save,
    email_texts_save,
    sender_domains_save,
)
from smtp.services.rendering import BRANDED_KINDS, email_preview_render

__all__ = [
    "BRANDED_KINDS",
    "TEST_SUBJECT",
    "BrandingInput",
    "IdentitySaveResult",
    "SaveResult",
    "SystemEmail",
    "TestEmailBusy",
    "TestEmailConflict",
    "TestEmailRefused",
    "TestedSave",
    "email_branding_save",
    "email_preview_render",
    "email_preview_send",
    "email_texts_save",
    "send_system_email",
    "send_system_emails",
    "sender_domains_save",
    "smtp_config_delete",
    "smtp_config_health_check",
    "smtp_config_health_check_targets",
    "smtp_config_remove_client_certificate",
    "smtp_config_remove_password",
    "smtp_config_save",
    "smtp_config_save_tested",
    "smtp_test_email_request",
]
