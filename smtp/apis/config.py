"""``/event/v1/email/config``: create or replace, read and delete the caller's
SMTP configuration.

Scoped by the caller's session: a partner user acts on the partner's
configuration, an organization user on the organization's (SMTP feature on).
Answers are written by the output serializers below, and only by them.
"""

from __future__ import annotations

import json
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import (
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    render,
)
from smtp.enums import OAUTH2_DEFAULT_SCOPES, Level
from smtp.selectors import (
    EffectiveSmtp,
    smtp_config_effective,
    smtp_config_get_and_effective,
    smtp_config_notices,
    smtp_failover_route,
    smtp_limits_in_effect,
)
from smtp.services import smtp_config_delete, smtp_config_save
from smtp.validators import (
    FAILOVER_MESSAGE,
    MAX_CONNECTIONS_MESSAGE,
    MESSAGES_PER_MINUTE_MESSAGE,
    PORT_MESSAGE,
    RETRIES_MESSAGE,
    SmtpInput,
    SmtpValidationError,
)
from tenants.access import api_tenant_scope
from tenants.selectors import TenantScope

# -- input ---------------------------------------------------------------------------

# The rules name OAuth2 fields as the form does; the API nests them in "oauth2".
OAUTH2_PREFIX = "oauth2_"


class SecretKeyField(serializers.JSONField):
    """A service account key: the JSON key file as an object, or as its text."""

    def to_internal_value(self, data):
        if data is None or isinstance(data, str):
            return data
        if isinstance(data, dict):
            return json.dumps(data)
        raise serializers.ValidationError(
            "Must be the service account's JSON key, as an object or as text."
        )


class OAuth2InputSerializer(StrictSerializer):
    provider = StrictCharField(
        required=False,
        allow_blank=True,
        help_text="microsoft, google or custom.",
    )
    tenant_id = StrictCharField(
        required=False, allow_blank=True, max_length=253, help_text="Microsoft only."
    )
    client_id = StrictCharField(required=False, allow_blank=True, max_length=1024)
    client_secret = StrictCharField(
        required=False,
        allow_blank=True,
        allow_null=True,
        trim_whitespace=False,
        write_only=True,
        max_length=4096,
        help_text="Write-only. Omit or leave empty to keep the stored secret.",
    )
    scope = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=1024,
        help_text="Empty: the provider's default.",
    )
    token_url = StrictCharField(
        required=False, allow_blank=True, max_length=2000, help_text="custom only."
    )
    service_account_key = SecretKeyField(
        required=False,
        allow_null=True,
        write_only=True,
        help_text="Google only. Write-only: the JSON key file (object or text); "
        "omit to keep the stored key.",
    )
    client_secret_expires_on = serializers.DateField(
        required=False, allow_null=True, help_text="YYYY-MM-DD; warned 14 days before."
    )


class SmtpConfigInputSerializer(StrictSerializer):
    username = StrictCharField(
        required=False, allow_blank=True, trim_whitespace=False, max_length=1024
    )
    password = StrictCharField(
        required=False,
        allow_blank=True,
        allow_null=True,
        trim_whitespace=False,
        write_only=True,
        max_length=4096,
        help_text="Write-only. Omit or leave empty to keep the stored password.",
    )
    host = StrictCharField(required=False, allow_blank=True, trim_whitespace=False)
    port = StrictIntegerField(
        required=False, default=587, error_messages={"invalid": PORT_MESSAGE}
    )
    use_tls = StrictBooleanField(required=False, allow_null=True, default=None)
    security = StrictCharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="none, starttls or ssl. Omit to derive it from use_tls and port.",
    )
    use_insecure = StrictBooleanField(required=False, default=False)
    retries = StrictIntegerField(
        required=False, default=3, error_messages={"invalid": RETRIES_MESSAGE}
    )
    sender_email = StrictCharField(required=False, allow_blank=True, max_length=1024)
    auth_method = StrictCharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="password (default), oauth2, certificate or none.",
    )
    oauth2 = OAuth2InputSerializer(required=False, allow_null=True)
    client_cert = StrictCharField(
        required=False,
        allow_blank=True,
        allow_null=True,
        trim_whitespace=False,
        max_length=32768,
        help_text="Client certificate for mutual TLS, PEM (its chain may follow). "
        'Omit or null to keep the stored one; "" removes it and its key.',
    )
    client_key = StrictCharField(
        required=False,
        allow_blank=True,
        allow_null=True,
        trim_whitespace=False,
        write_only=True,
        max_length=16384,
        help_text="Write-only. The client certificate's private key, PEM, without "
        "a passphrase. Omit or leave empty to keep the stored key.",
    )
    sender_name = StrictCharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        max_length=1024,
        help_text="Display name in From (non-ASCII allowed). Omit: inherited.",
    )
    reply_to = StrictCharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        max_length=1024,
        help_text="Reply-To address. Omit: inherited.",
    )
    bounce_address = StrictCharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        max_length=1024,
        help_text="Envelope sender (MAIL FROM). Omit: inherited, else sender_email.",
    )
    messages_per_minute = StrictIntegerField(
        required=False,
        allow_null=True,
        default=None,
        error_messages={"invalid": MESSAGES_PER_MINUTE_MESSAGE},
        help_text="0 to 1000000; 0: no limit. Omit or null: the deployment's "
        "default (SMTP_DEFAULT_MESSAGES_PER_MINUTE).",
    )
    max_connections = StrictIntegerField(
        required=False,
        allow_null=True,
        default=None,
        error_messages={"invalid": MAX_CONNECTIONS_MESSAGE},
        help_text="Concurrent connections at most, 0 to 1000; 0: no limit. Omit or "
        "null: the deployment's default (SMTP_DEFAULT_MAX_CONNECTIONS).",
    )
    failover = StrictBooleanField(
        required=False,
        default=False,
        error_messages={"invalid": FAILOVER_MESSAGE},
        help_text="When this server cannot be reached (resolve, connect, TLS, "
        "authentication), send through the next level's configuration. Omit: "
        "false.",
    )


class EmailConfigInputSerializer(StrictSerializer):
    smtp_config = SmtpConfigInputSerializer()


class ConfigBodySerializer(StrictSerializer):
    email_config = EmailConfigInputSerializer()


def smtp_input_from(data: dict[str, Any]) -> SmtpInput:
    """The validated ``smtp_config`` object as the services' input."""
    oauth2 = data.get("oauth2") or {}
    return SmtpInput(
        host=data.get("host", ""),
        port=data.get("port"),
        use_tls=data.get("use_tls"),
        security=data.get("security") or None,
        use_insecure=data.get("use_insecure", False),
        username=data.get("username", ""),
        password=data.get("password") or None,
        retries=data.get("retries"),
        sender_email=data.get("sender_email", ""),
        auth_method=data.get("auth_method") or None,
        oauth2_provider=oauth2.get("provider", ""),
        oauth2_tenant_id=oauth2.get("tenant_id", ""),
        oauth2_client_id=oauth2.get("client_id", ""),
        oauth2_client_secret=oauth2.get("client_secret") or None,
        oauth2_scope=oauth2.get("scope", ""),
        oauth2_token_url=oauth2.get("token_url", ""),
        oauth2_service_account_key=oauth2.get("service_account_key") or None,
        oauth2_client_secret_expires_on=oauth2.get("client_secret_expires_on"),
        client_cert=data.get("client_cert"),
        client_key=data.get("client_key") or None,
        sender_name=data.get("sender_name", ""),
        reply_to=data.get("reply_to", ""),
        bounce_address=data.get("bounce_address", ""),
        messages_per_minute=data.get("messages_per_minute"),
        max_connections=data.get("max_connections"),
        failover=data.get("failover", False),
    )


def api_errors(errors: dict[str, list[str]]) -> dict[str, Any]:
    """The rules' messages by field, the OAuth2 ones inside ``oauth2``."""
    named: dict[str, Any] = {}
    for name, messages in errors.items():
        if name.startswith(OAUTH2_PREFIX):
            named.setdefault("oauth2", {})[name.removeprefix(OAUTH2_PREFIX)] = messages
        else:
            named[name] = messages
    return named


# -- output --------------------------------------------------------------------------


class OAuth2OutputSerializer(serializers.Serializer):
    """The OAuth2 settings: never a secret or key, only whether one is stored."""

    provider = serializers.CharField(source="oauth2_provider")
    tenant_id = serializers.CharField(source="oauth2_tenant_id")
    client_id = serializers.CharField(source="oauth2_client_id")
    client_secret_set = serializers.BooleanField(source="oauth2_client_secret_set")
    scope = serializers.CharField(source="oauth2_scope")
    effective_scope = serializers.SerializerMethodField()
    token_url = serializers.CharField(source="oauth2_token_url")
    service_account_key_set = serializers.BooleanField(
        source="oauth2_service_account_key_set"
    )
    client_secret_expires_on = serializers.DateField(
        source="oauth2_client_secret_expires_on", allow_null=True
    )

    def get_effective_scope(self, configuration) -> str:
        return configuration.oauth2_scope or OAUTH2_DEFAULT_SCOPES.get(
            configuration.oauth2_provider, ""
        )


class ClientCertificateOutputSerializer(serializers.Serializer):
    """The stored client certificate, by subject and expiry (never its key)."""

    subject = serializers.CharField()
    issuer = serializers.CharField()
    not_after = serializers.DateTimeField()


class SmtpConfigOutputSerializer(serializers.Serializer):
    """A stored configuration: never the password itself, only whether it is set."""

    host = serializers.CharField()
    port = serializers.IntegerField()
    use_tls = serializers.BooleanField()
    security = serializers.CharField()
    use_insecure = serializers.BooleanField()
    username = serializers.CharField()
    password_set = serializers.BooleanField()
    retries = serializers.IntegerField()
    sender_email = serializers.CharField()
    auth_method = serializers.CharField()
    oauth2 = serializers.SerializerMethodField()
    client_certificate = ClientCertificateOutputSerializer(allow_null=True)
    client_key_set = serializers.BooleanField()
    sender_name = serializers.CharField()
    reply_to = serializers.CharField()
    bounce_address = serializers.CharField()
    messages_per_minute = serializers.IntegerField(
        allow_null=True, help_text="null: the default (effective_messages_per_minute)."
    )
    effective_messages_per_minute = serializers.SerializerMethodField()
    max_connections = serializers.IntegerField(
        allow_null=True, help_text="null: the default (effective_max_connections)."
    )
    effective_max_connections = serializers.SerializerMethodField()
    failover = serializers.BooleanField()
    updated_at = serializers.DateTimeField()
    updated_by = serializers.CharField(source="updated_by.email", allow_null=True)

    def get_effective_messages_per_minute(self, configuration) -> int:
        """The limit this configuration sends with (0: none)."""
        return smtp_limits_in_effect(configuration)["messages_per_minute"]

    def get_effective_max_connections(self, configuration) -> int:
        return smtp_limits_in_effect(configuration)["max_connections"]

    @extend_schema_field(OAuth2OutputSerializer(allow_null=True))
    def get_oauth2(self, configuration) -> dict[str, Any] | None:
        if not configuration.uses_oauth2:
            return None
        return render(OAuth2OutputSerializer, configuration)


class LayerOutputSerializer(serializers.Serializer):
    level = serializers.ChoiceField(choices=Level.choices)
    configured = serializers.BooleanField()
    in_effect = serializers.BooleanField()
    not_used_because = serializers.CharField(required=False)


class EffectiveOutputSerializer(serializers.Serializer):
    """What is in effect and where it comes from (never a password); the server's
    fields are absent when nothing is in effect."""

    source = serializers.ChoiceField(choices=Level.choices)
    host = serializers.CharField(source="settings.host", required=False)
    port = serializers.IntegerField(source="settings.port", required=False)
    use_tls = serializers.BooleanField(source="settings.use_tls", required=False)
    security = serializers.CharField(source="settings.security", required=False)
    use_insecure = serializers.BooleanField(
        source="settings.use_insecure", required=False
    )
    username = serializers.CharField(source="settings.username", required=False)
    password_set = serializers.BooleanField(
        source="settings.password_set", required=False
    )
    retries = serializers.IntegerField(source="settings.retries", required=False)
    sender_email = serializers.CharField(source="settings.sender_email", required=False)
    auth_method = serializers.CharField(source="settings.auth_method", required=False)
    # The identity in effect, inherited field by field.
    sender_name = serializers.CharField(source="settings.sender_name", required=False)
    reply_to = serializers.CharField(source="settings.reply_to", required=False)
    bounce_address = serializers.CharField(
        source="settings.bounce_address", required=False
    )
    # The delivery limits in effect (0: none) and the failover choice.
    messages_per_minute = serializers.IntegerField(
        source="settings.messages_per_minute", required=False
    )
    max_connections = serializers.IntegerField(
        source="settings.max_connections", required=False
    )
    failover = serializers.BooleanField(source="settings.failover", required=False)
    failover_to = serializers.SerializerMethodField()
    levels = serializers.SerializerMethodField()

    @extend_schema_field(
        serializers.ChoiceField(choices=Level.choices, allow_null=True)
    )
    def get_failover_to(self, effective: EffectiveSmtp) -> str | None:
        """The level emails go to when the server in effect cannot be reached
        (null: failover off, or no level below)."""
        route = smtp_failover_route(effective)
        return route[1].level if len(route) > 1 else None

    @extend_schema_field(LayerOutputSerializer(many=True))
    def get_levels(self, effective: EffectiveSmtp) -> list[dict[str, Any]]:
        return render(
            LayerOutputSerializer,
            [
                {
                    "level": layer.level,
                    "configured": layer.settings is not None,
                    "in_effect": layer.level == effective.source,
                    **(
                        {"not_used_because": layer.skipped_because}
                        if layer.skipped_because
                        else {}
                    ),
                }
                for layer in effective.layers
            ],
            many=True,
        )


class EmailConfigOutputSerializer(serializers.Serializer):
    smtp_config = SmtpConfigOutputSerializer(source="*")


class NoticeOutputSerializer(serializers.Serializer):
    """A standing notice (e.g. basic_auth_retirement): a code and what to do."""

    code = serializers.CharField()
    level = serializers.ChoiceField(choices=Level.choices)
    message = serializers.CharField()


class ConfigOutputSerializer(serializers.Serializer):
    email_config = EmailConfigOutputSerializer(
        source="configuration", help_text='{"smtp_config": {...}}'
    )
    effective = EffectiveOutputSerializer()
    notices = NoticeOutputSerializer(many=True)
    notes = serializers.ListField(child=serializers.CharField(), required=False)


def _answer(
    scope: TenantScope, configuration, effective: EffectiveSmtp | None = None
) -> dict[str, Any]:
    effective = effective or _effective(scope)
    return {
        "configuration": configuration,
        "effective": effective,
        "notices": smtp_config_notices(
            effective=effective, configuration=configuration
        ),
    }


class NotFoundOutputSerializer(serializers.Serializer):
    error = serializers.CharField()
    effective = EffectiveOutputSerializer(required=False)


def _effective(scope: TenantScope) -> EffectiveSmtp:
    return smtp_config_effective(partner=scope.partner, organization=scope.organization)


def _not_found(
    scope: TenantScope, error: str, effective: EffectiveSmtp | None = None
) -> Response:
    effective = effective or _effective(scope)
    return Response(
        render(NotFoundOutputSerializer, {"error": error, "effective": effective}),
        status=status.HTTP_404_NOT_FOUND,
    )


class SmtpConfigApi(APIView):
    """Create or replace, read, and delete the caller's SMTP configuration."""

    @extend_schema(
        operation_id="email_config_get",
        responses={200: ConfigOutputSerializer, 404: NotFoundOutputSerializer},
    )
    def get(self, request):
        scope = api_tenant_scope(request, smtp_feature=True)
        configuration, effective = smtp_config_get_and_effective(
            partner=scope.partner, organization=scope.organization
        )
        if configuration is None:
            return _not_found(
                scope,
                f"No SMTP configuration at the {scope.level} level; 'effective' "
                "tells which settings are in effect.",
                effective,
            )
        answer = _answer(scope, configuration, effective)
        return Response(render(ConfigOutputSerializer, answer))

    @extend_schema(
        operation_id="email_config_save",
        request=ConfigBodySerializer,
        responses={200: ConfigOutputSerializer, 201: ConfigOutputSerializer},
    )
    def post(self, request):
        scope = api_tenant_scope(request, smtp_feature=True)
        body = ConfigBodySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = smtp_input_from(body.validated_data["email_config"]["smtp_config"])
        try:
            result = smtp_config_save(scope=scope, data=data, actor=request.user)
        except SmtpValidationError as error:
            raise serializers.ValidationError(
                {"email_config": {"smtp_config": api_errors(error.errors)}}
            ) from error
        answer = _answer(scope, result.configuration)
        if result.notes:
            answer["notes"] = list(result.notes)
        return Response(
            render(ConfigOutputSerializer, answer),
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )

    @extend_schema(
        operation_id="email_config_delete",
        responses={
            204: OpenApiResponse(description="Deleted"),
            404: NotFoundOutputSerializer,
        },
    )
    def delete(self, request):
        scope = api_tenant_scope(request, smtp_feature=True)
        if not smtp_config_delete(scope=scope, actor=request.user):
            return _not_found(
                scope, f"No SMTP configuration at the {scope.level} level to delete."
            )
        return Response(status=status.HTTP_204_NO_CONTENT)
