"""``/event/v1/email/config``: create or replace, read and delete the caller's
SMTP configuration.

Scoped by the caller's session: a partner user acts on the partner's
configuration, an organization user on the organization's (SMTP feature on).
Answers are written by the output serializers below, and only by them.
"""

from __future__ import annotations

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
)
from smtp.enums import Level
from smtp.selectors import (
    EffectiveSmtp,
    smtp_config_effective,
    smtp_config_get_and_effective,
)
from smtp.services import smtp_config_delete, smtp_config_save
from smtp.validators import (
    PORT_MESSAGE,
    RETRIES_MESSAGE,
    SmtpInput,
    SmtpValidationError,
)
from tenants.access import api_tenant_scope
from tenants.selectors import TenantScope

# -- input ---------------------------------------------------------------------------


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


class EmailConfigInputSerializer(StrictSerializer):
    smtp_config = SmtpConfigInputSerializer()


class ConfigBodySerializer(StrictSerializer):
    email_config = EmailConfigInputSerializer()


def smtp_input_from(data: dict[str, Any]) -> SmtpInput:
    """The validated ``smtp_config`` object as the services' input."""
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
    )


# -- output --------------------------------------------------------------------------


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
    updated_at = serializers.DateTimeField()
    updated_by = serializers.CharField(source="updated_by.email", allow_null=True)


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
    levels = serializers.SerializerMethodField()

    @extend_schema_field(LayerOutputSerializer(many=True))
    def get_levels(self, effective: EffectiveSmtp) -> list[dict[str, Any]]:
        return LayerOutputSerializer(
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
        ).data


class EmailConfigOutputSerializer(serializers.Serializer):
    smtp_config = SmtpConfigOutputSerializer(source="*")


class ConfigOutputSerializer(serializers.Serializer):
    email_config = EmailConfigOutputSerializer(
        source="configuration", help_text='{"smtp_config": {...}}'
    )
    effective = EffectiveOutputSerializer()
    notes = serializers.ListField(child=serializers.CharField(), required=False)


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
        NotFoundOutputSerializer({"error": error, "effective": effective}).data,
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
        answer = {"configuration": configuration, "effective": effective}
        return Response(ConfigOutputSerializer(answer).data)

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
                {"email_config": {"smtp_config": error.errors}}
            ) from error
        answer: dict[str, Any] = {
            "configuration": result.configuration,
            "effective": _effective(scope),
        }
        if result.notes:
            answer["notes"] = list(result.notes)
        return Response(
            ConfigOutputSerializer(answer).data,
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
