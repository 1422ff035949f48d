"""OpenAPI description of the console's authentication (the ``rsid`` cookie)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class SessionCookieScheme(OpenApiAuthenticationExtension):
    target_class = "core.api.SessionCookieAuthentication"
    name = "rsid"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": "rsid",
            "description": "Session cookie set by POST /auth/v1/login/.",
        }
