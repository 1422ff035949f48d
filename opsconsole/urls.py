"""URLs. Each app gives root patterns and the pages of each console; the consoles
are composed here under one namespace each: ``ops:`` (/ops/) and ``web:`` (/console/).
"""

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts import urls as accounts_urls
from auditlog import urls as audit_urls
from smtp import urls as smtp_urls
from tenants import urls as tenants_urls

_apps = (tenants_urls, smtp_urls, audit_urls, accounts_urls)

ops_urlpatterns = [p for app in _apps for p in getattr(app, "ops_urlpatterns", [])]
web_urlpatterns = [p for app in _apps for p in getattr(app, "web_urlpatterns", [])]


class FaviconView(RedirectView):
    """Browsers ask for /favicon.ico on pages that name no icon (the admin)."""

    permanent = False

    def get_redirect_url(self, *args, **kwargs) -> str:
        return static("img/favicon.svg")


urlpatterns = [
    path("favicon.ico", FaviconView.as_view()),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path(
        "api/docs/",
        # The split view serves its start-up script as a file (no inline script).
        SpectacularSwaggerSplitView.as_view(url_name="api-schema"),
        name="api-docs",
    ),
    path("ops/", include((ops_urlpatterns, "ops"))),
    path("console/", include((web_urlpatterns, "web"))),
    *[p for app in _apps for p in getattr(app, "urlpatterns", [])],
]

handler404 = "opsconsole.views.not_found"
handler403 = "opsconsole.views.forbidden"
handler500 = "opsconsole.views.server_error"
