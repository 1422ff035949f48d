from django.apps import AppConfig


class OpsConsoleConfig(AppConfig):
    name = "opsconsole"
    verbose_name = "Ops Console"

    def ready(self) -> None:
        # Registers the OpenAPI description of the session cookie.
        from opsconsole import schema  # noqa: F401
