"""``/event/v1/email/config/verification``: send a test email through the
caller's configuration in effect, and read its status and steps (``?wait=N``
waits for the result, within the limits of ``core.longpoll``)."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import StrictCharField, StrictSerializer
from core.longpoll import WaitRefused, api_wait
from core.text import is_whole_number
from smtp.apis.refusals import refusal_answer
from smtp.enums import EmailStatus
from smtp.models import Email
from smtp.selectors import email_get, email_last_steps, email_wait_final
from smtp.services import TestEmailRefused, smtp_test_email_request
from smtp.validators import SmtpValidationError
from tenants.access import api_tenant_scope

MAX_WAIT_SECONDS = 30
WAIT_HELP = (
    "Wait up to N seconds (0-30) for the result; the server waits at most "
    "API_WAIT_MAX_SECONDS (10 by default), and at most 2 waits per user at a time "
    "(429 with Retry-After beyond)."
)
# The service's field names, as this API names them.
VERIFICATION_FIELDS = {"recipient": "recipient_email"}


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


def refused(error: TestEmailRefused | WaitRefused) -> Response:
    body, code, headers = refusal_answer(error)
    return Response(body, status=code, headers=headers)


class VerificationInputSerializer(StrictSerializer):
    sender_email = StrictCharField(required=False, allow_blank=True, max_length=254)
    recipient_email = StrictCharField(required=True, allow_blank=True, max_length=254)
    subject = StrictCharField(required=False, allow_blank=True, trim_whitespace=False)
    body = StrictCharField(required=False, allow_blank=True, trim_whitespace=False)


class BlankAsNullField(serializers.CharField):
    """A text column whose empty value the API shows as null."""

    def to_representation(self, value: Any) -> str | None:
        return str(value) or None


class EmailStatusOutputSerializer(serializers.Serializer):
    """An email's status and steps, as the verification API shows it."""

    id = serializers.IntegerField()
    kind = serializers.CharField()
    status = serializers.ChoiceField(choices=EmailStatus.values)
    progress = serializers.CharField()
    recipient = serializers.EmailField()
    level = BlankAsNullField(source="level_used", allow_null=True)
    # The level in effect, whose server could not be reached (failover); null:
    # none.
    fallback_from = BlankAsNullField(allow_null=True)
    server = BlankAsNullField(allow_null=True)
    attempts = serializers.IntegerField()
    steps = serializers.SerializerMethodField()
    failed_step = BlankAsNullField(allow_null=True)
    reply_code = serializers.IntegerField(allow_null=True)
    error = BlankAsNullField(source="last_error", allow_null=True)
    hint = BlankAsNullField(allow_null=True)
    field = BlankAsNullField(source="error_field", allow_null=True)
    hint_code = serializers.SerializerMethodField()
    message_id = serializers.CharField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    status_url = serializers.SerializerMethodField()

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_steps(self, email: Email) -> list[dict[str, Any]]:
        # A sent system email keeps its steps in its last attempt.
        return email.steps or email_last_steps(email=email)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_hint_code(self, email: Email) -> str | None:
        """The failed step's hint code (e.g. basic_auth_disabled), or null; after
        a failover, of the last session's (the earlier ones failed over)."""
        steps = self.get_steps(email)
        last = max(
            (i + 1 for i, s in enumerate(steps) if s.get("name") == "failover"),
            default=0,
        )
        failed = next((s for s in steps[last:] if s.get("status") == "failed"), None)
        return (failed or {}).get("hint_code") or None

    @extend_schema_field(serializers.URLField())
    def get_status_url(self, email: Email) -> str:
        return self.context["request"].build_absolute_uri(
            reverse("api-email-verification-status", args=[email.pk])
        )


def _status(email: Email, request, **options) -> Response:
    output = EmailStatusOutputSerializer(email, context={"request": request})
    return Response(output.data, **options)


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
        except (TestEmailRefused, WaitRefused) as error:
            return refused(error)
        # 202 while the result is pending; 200 once ?wait saw it finish.
        code = status.HTTP_200_OK if email.is_final else status.HTTP_202_ACCEPTED
        return _status(email, request, status=code)


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
        except WaitRefused as error:
            return refused(error)
        return _status(email, request)
