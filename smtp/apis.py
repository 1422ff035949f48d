"""The documented SMTP configuration API: ``/event/v1/email/config``.

Scoped by the caller's session: a partner user acts on the partner's
configuration, an organization user on the organization's (SMTP feature on).
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import (
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
)
from core.longpoll import WaitRefused, api_wait
from core.text import is_whole_number
from smtp.models import Email, SmtpConfiguration
from smtp.selectors import (
    EffectiveSmtp,
    email_get,
    email_last_steps,
    email_wait_final,
    smtp_config_effective,
    smtp_config_get,
)
from smtp.services import (
    TestEmailRefused,
    smtp_config_delete,
    smtp_config_save,
    smtp_test_email_request,
)
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
                    "error": f"No SMTP configuration at the {scope.level} "
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
                    "error": f"No SMTP configuration at the {scope.level} "
                    "level to delete.",
                    "effective": _effective_for(scope),
                },
                status=status.HTTP_404_NOT_FOUND,
            )
        return Response(status=status.HTTP_204_NO_CONTENT)


# -- verification ------------------------------------------------------------------

MAX_WAIT_SECONDS = 30
WAIT_HELP = (
    "Wait up to N seconds (0-30) for the result; the server waits at most "
    "API_WAIT_MAX_SECONDS (10 by default), and at most 2 waits per user at a time "
    "(429 with Retry-After beyond)."
)


def wait_seconds(request) -> int:
    """``?wait=N``: how long to wait for the result (0-30 s asked; the wait itself
    is bounded by ``core.longpoll``)."""
    raw = request.query_params.get("wait", "0")
    if not is_whole_number(raw) or int(raw) > MAX_WAIT_SECONDS:
        message = (
            f"wait must be a whole number of seconds from 0 to {MAX_WAIT_SECONDS}."
        )
        raise serializers.ValidationError({"wait": [message]})
    return int(raw)


def wait_refused(refused: WaitRefused) -> Response:
    return Response(
        {"error": refused.message},
        status=status.HTTP_429_TOO_MANY_REQUESTS,
        headers=refused.headers,
    )


def email_status_output(email: Email, *, request) -> dict[str, Any]:
    """An email's status and steps, as the verification API and the pages show it."""
    return {
        "id": email.pk,
        "kind": email.kind,
        "status": email.status,
        "progress": email.progress,
        "recipient": email.recipient,
        "level": email.level_used or None,
        "server": email.server or None,
        "attempts": email.attempts,
        "steps": email.steps or email_last_steps(email=email),
        "failed_step": email.failed_step or None,
        "reply_code": email.reply_code,
        "error": email.last_error or None,
        "hint": email.hint or None,
        "field": email.error_field or None,
        "message_id": email.message_id,
        "created_at": email.created_at,
        "finished_at": email.finished_at,
        "status_url": request.build_absolute_uri(
            reverse("api-email-verification-status", args=[email.pk])
        ),
    }


class VerificationInputSerializer(StrictSerializer):
    sender_email = StrictCharField(required=False, allow_blank=True, max_length=254)
    recipient_email = StrictCharField(required=True, allow_blank=True, max_length=254)
    subject = StrictCharField(required=False, allow_blank=True, trim_whitespace=False)
    body = StrictCharField(required=False, allow_blank=True, trim_whitespace=False)


class EmailStatusOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    status = serializers.ChoiceField(choices=["queued", "sending", "sent", "failed"])
    progress = serializers.CharField()
    recipient = serializers.EmailField()
    level = serializers.CharField(allow_null=True)
    server = serializers.CharField(allow_null=True)
    attempts = serializers.IntegerField()
    steps = serializers.ListField(child=serializers.DictField())
    failed_step = serializers.CharField(allow_null=True)
    reply_code = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_null=True)
    hint = serializers.CharField(allow_null=True)
    field = serializers.CharField(allow_null=True)
    message_id = serializers.CharField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    status_url = serializers.URLField()


# The service's field names, as this API names them.
VERIFICATION_FIELDS = {"recipient": "recipient_email"}


class VerificationApi(APIView):
    """Send a test email through the caller's configuration in effect."""

    @extend_schema(
        operation_id="email_config_verify",
        request=VerificationInputSerializer,
        parameters=[OpenApiParameter("wait", int, description=WAIT_HELP)],
        responses={202: EmailStatusOutputSerializer, 200: EmailStatusOutputSerializer},
    )
    def post(self, request):
        scope = api_tenant_scope(request, smtp_feature=True)
        wait = wait_seconds(request)
        body = VerificationInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            # The place to wait is taken first: a refused wait queues nothing.
            with api_wait(user=request.user, seconds=wait) as seconds:
                email = smtp_test_email_request(
                    scope=scope,
                    actor=request.user,
                    recipient=data["recipient_email"],
                    sender=data.get("sender_email", ""),
                    subject=data.get("subject", ""),
                    body=data.get("body", ""),
                )
                email = email_wait_final(email=email, seconds=seconds)
        except SmtpValidationError as error:
            raise serializers.ValidationError(
                {VERIFICATION_FIELDS.get(k, k): v for k, v in error.errors.items()}
            ) from error
        except TestEmailRefused as refused:
            return Response(
                {"error": refused.message},
                status=refused.status,
                headers=refused.headers,
            )
        except WaitRefused as refused:
            return wait_refused(refused)
        # 202 while the result is pending; 200 once ?wait saw it finish.
        code = status.HTTP_200_OK if email.is_final else status.HTTP_202_ACCEPTED
        return Response(email_status_output(email, request=request), status=code)


class VerificationStatusApi(APIView):
    """The status and steps of a verification (or test) email."""

    @extend_schema(
        operation_id="email_config_verification_status",
        parameters=[OpenApiParameter("wait", int, description=WAIT_HELP)],
        responses={200: EmailStatusOutputSerializer},
    )
    def get(self, request, email_id: int):
        scope = api_tenant_scope(request, smtp_feature=True)
        wait = wait_seconds(request)
        email = email_get(scope=scope, email_id=email_id)
        if email is None:
            raise Http404("No such verification email for your tenant.")
        try:
            with api_wait(user=request.user, seconds=wait) as seconds:
                email = email_wait_final(email=email, seconds=seconds)
        except WaitRefused as refused:
            return wait_refused(refused)
        return Response(email_status_output(email, request=request))
