"""The documented SMTP configuration API: ``/event/v1/email/config``.

Scoped by the caller's session: a partner user acts on the partner's
configuration, an organization user on the organization's (SMTP feature on).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from opsconsole.api import (
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
)
from smtp.models import SmtpConfiguration
from smtp.selectors import EffectiveSmtp, smtp_config_effective, smtp_config_get
from smtp.services import smtp_config_delete, smtp_config_save
from smtp.validators import (
    PORT_MESSAGE,
    RETRIES_MESSAGE,
    SmtpInput,
    SmtpValidationError,
)
from tenants.access import api_tenant_scope
from tenants.selectors import TenantScope


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


class EmailConfigInputSerializer(StrictSerializer):
    smtp_config = SmtpConfigInputSerializer()


class ConfigBodySerializer(StrictSerializer):
    email_config = EmailConfigInputSerializer()


class SmtpConfigOutputSerializer(serializers.Serializer):
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
    updated_by = serializers.CharField(allow_null=True)


class EffectiveOutputSerializer(serializers.Serializer):
    source = serializers.ChoiceField(
        choices=["organization", "partner", "controller", "none"]
    )
    host = serializers.CharField(required=False)
    port = serializers.IntegerField(required=False)
    use_tls = serializers.BooleanField(required=False)
    security = serializers.CharField(required=False)
    use_insecure = serializers.BooleanField(required=False)
    username = serializers.CharField(required=False)
    password_set = serializers.BooleanField(required=False)
    retries = serializers.IntegerField(required=False)
    sender_email = serializers.CharField(required=False)
    levels = serializers.ListField(child=serializers.DictField())


class ConfigOutputSerializer(serializers.Serializer):
    email_config = serializers.DictField(
        child=SmtpConfigOutputSerializer(), help_text='{"smtp_config": {...}}'
    )
    effective = EffectiveOutputSerializer()
    notes = serializers.ListField(child=serializers.CharField(), required=False)


class NotFoundOutputSerializer(serializers.Serializer):
    error = serializers.CharField()
    effective = EffectiveOutputSerializer(required=False)


def configuration_output(configuration: SmtpConfiguration) -> dict[str, Any]:
    """A stored configuration as the API shows it: never the password itself."""
    return {
        "host": configuration.host,
        "port": configuration.port,
        "use_tls": configuration.use_tls,
        "security": configuration.security,
        "use_insecure": configuration.use_insecure,
        "username": configuration.username,
        "password_set": configuration.password_set,
        "retries": configuration.retries,
        "sender_email": configuration.sender_email,
        "updated_at": configuration.updated_at.isoformat().replace("+00:00", "Z"),
        "updated_by": (
            configuration.updated_by.email if configuration.updated_by_id else None
        ),
    }


def effective_output(effective: EffectiveSmtp) -> dict[str, Any]:
    """What is in effect and where it comes from (never a password)."""
    body: dict[str, Any] = {"source": effective.source.value}
    settings = effective.settings
    if settings is not None:
        body.update(
            host=settings.host,
            port=settings.port,
            use_tls=settings.use_tls,
            security=settings.security.value,
            use_insecure=settings.use_insecure,
            username=settings.username,
            password_set=settings.password_set,
            retries=settings.retries,
            sender_email=settings.sender_email,
        )
    body["levels"] = [
        {
            "level": layer.level.value,
            "configured": layer.settings is not None,
            "in_effect": layer.level == effective.source,
            **(
                {"not_used_because": layer.skipped_because}
                if layer.skipped_because
                else {}
            ),
        }
        for layer in effective.layers
    ]
    return body


def _effective_for(scope: TenantScope) -> dict[str, Any]:
    return effective_output(
        smtp_config_effective(partner=scope.partner, organization=scope.organization)
    )


def _level_name(scope: TenantScope) -> str:
    return "organization" if scope.organization is not None else "partner"


class SmtpConfigApi(APIView):
    """Create or replace, read, and delete the caller's SMTP configuration."""

    @extend_schema(
        operation_id="email_config_get",
        responses={200: ConfigOutputSerializer, 404: NotFoundOutputSerializer},
    )
    def get(self, request):
        scope = api_tenant_scope(request, smtp_feature=True)
        configuration = smtp_config_get(
            partner=scope.partner, organization=scope.organization
        )
        if configuration is None:
            return Response(
                {
                    "error": f"No SMTP configuration at the {_level_name(scope)} "
                    "level; 'effective' tells which settings are in effect.",
                    "effective": _effective_for(scope),
                },
                status=status.HTTP_404_NOT_FOUND,
            )
        return Response(
            {
                "email_config": {"smtp_config": configuration_output(configuration)},
                "effective": _effective_for(scope),
            }
        )

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
        answer = {
            "email_config": {"smtp_config": configuration_output(result.configuration)},
            "effective": _effective_for(scope),
        }
        if result.notes:
            answer["notes"] = list(result.notes)
        return Response(
            answer,
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
            return Response(
                {
                    "error": f"No SMTP configuration at the {_level_name(scope)} "
                    "level to delete.",
                    "effective": _effective_for(scope),
                },
                status=status.HTTP_404_NOT_FOUND,
            )
        return Response(status=status.HTTP_204_NO_CONTENT)
