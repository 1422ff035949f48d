from django.apps import AppConfig


class SmtpConfig(AppConfig):
    name = "smtp"
    verbose_name = "SMTP"
