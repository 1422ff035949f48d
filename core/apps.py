from urllib.parse import urlsplit

from django.apps import AppConfig
from django.conf import settings

from core import redaction


class CoreConfig(AppConfig):
    name = "core"
    # The label these models had when they lived in opsconsole/: their tables and
    # migration history stay as they were.
    label = "opsconsole"
    verbose_name = "Ops Console"

    def ready(self) -> None:
        # Registers the OpenAPI description of the session cookie.
        from core import schema  # noqa: F401

        redaction.install(static_secrets=_configured_secrets())


def _configured_secrets() -> list[str]:
    """The secrets in this process's settings, scrubbed from every log line."""
    values = [settings.SECRET_KEY, *settings.FERNET_KEYS, settings.ES_PASSWORD]
    for url in (settings.REDIS_URL, settings.DATABASES["default"].get("PASSWORD")):
        if url and "://" in url:
            values.append(urlsplit(url).password or "")
        elif url:
            values.append(url)
    return [value for value in values if value]
