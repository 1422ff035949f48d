"""The Content-Security-Policy header, built once rather than for every response.

django-csp builds the header text from the settings on every response, twice
(the policy and the report-only one). The console sets no policy per view and
uses no nonce, so the text only changes with the settings: it is built on first
use and again after a settings change (tests change them). A response that does
carry its own policy parts, or a request that used a nonce, goes through
django-csp unchanged.
"""

from __future__ import annotations

from csp.constants import HEADER
from csp.middleware import CheckableLazyObject
from csp.middleware import CSPMiddleware as DjangoCSPMiddleware
from csp.utils import build_policy
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponseBase

_PER_RESPONSE = (
    "_csp_config",
    "_csp_update",
    "_csp_replace",
    "_csp_config_ro",
    "_csp_update_ro",
    "_csp_replace_ro",
    "_csp_exempt",
    "_csp_exempt_ro",
)

_built: dict[str, tuple[str, str]] = {}


@receiver(setting_changed)
def _forget_the_built_policy(*, setting: str, **kwargs) -> None:
    if setting.startswith("CONTENT_SECURITY_POLICY") or setting == "DEBUG":
        _built.clear()


def _policies() -> tuple[str, str]:
    """The header and the report-only header the settings give (each may be "")."""
    built = _built.get("policies")
    if built is None:
        built = _built["policies"] = (build_policy(), build_policy(report_only=True))
    return built


class CSPMiddleware(DjangoCSPMiddleware):
    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        policy, report_only = _policies()
        if (
            report_only
            or getattr(request, "_csp_nonce", None) is not None
            or any(hasattr(response, name) for name in _PER_RESPONSE)
            or HEADER in response
            or (response.status_code in (404, 500) and settings.DEBUG)
        ):
            return super().process_response(request, response)
        excluded = (settings.CONTENT_SECURITY_POLICY or {}).get(
            "EXCLUDE_URL_PREFIXES"
        ) or ()
        if policy and not request.path_info.startswith(tuple(excluded)):
            response[HEADER] = policy
        # As django-csp does: a nonce asked for after the header is written fails.
        request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)
        return response
