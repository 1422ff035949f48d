"""``/event/v1/email/texts``: a partner's subject and intro per kind of system
email, with placeholders of a fixed set (``smtp.identity.PLACEHOLDERS``).

Partner users only (organizations inherit their partner's texts). A text with
an unknown placeholder or a template tag is a 400 naming the field; nothing
changes then.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import StrictCharField, StrictSerializer
from smtp.enums import BRANDED_KINDS
from smtp.identity import PLACEHOLDERS
from smtp.selectors import email_branding
from smtp.services import email_texts_save
from smtp.validators import SmtpValidationError
from tenants.access import api_tenant_scope
from tenants.selectors import TenantScope


class TextInputSerializer(StrictSerializer):
    subject = StrictCharField(
        required=False, allow_blank=True, trim_whitespace=False, max_length=2000
    )
    intro = StrictCharField(
        required=False, allow_blank=True, trim_whitespace=False, max_length=5000
    )


class TextsBodySerializer(StrictSerializer):
    texts = serializers.DictField(
        child=TextInputSerializer(),
        help_text=f"By kind: {', '.join(BRANDED_KINDS)}. Omitted kinds are kept; "
        "empty strings restore the default.",
    )

    def validate_texts(self, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(BRANDED_KINDS))
        if unknown:
            raise serializers.ValidationError(
                f"Unknown kind {', '.join(unknown)}: use {', '.join(BRANDED_KINDS)}."
            )
        return value


class TextOutputSerializer(serializers.Serializer):
    subject = serializers.CharField()
    intro = serializers.CharField()


class TextsOutputSerializer(serializers.Serializer):
    texts = serializers.DictField(child=TextOutputSerializer())
    placeholders = serializers.DictField(child=serializers.CharField())


def _partner_scope(request) -> TenantScope:
    scope = api_tenant_scope(request)
    if scope.organization is not None:
        raise PermissionDenied(
            "Email texts are set by the partner; organizations use their partner's."
        )
    return scope


def _answer(scope: TenantScope) -> Response:
    branding = email_branding(partner=scope.partner)
    texts = {
        kind: dict(zip(("subject", "intro"), branding.text_for(kind), strict=True))
        for kind in BRANDED_KINDS
    }
    return Response(
        TextsOutputSerializer({"texts": texts, "placeholders": PLACEHOLDERS}).data
    )


class EmailTextsApi(APIView):
    """Read and set the partner's subject and intro per kind of email."""

    @extend_schema(
        operation_id="email_texts_get", responses={200: TextsOutputSerializer}
    )
    def get(self, request):
        return _answer(_partner_scope(request))

    @extend_schema(
        operation_id="email_texts_save",
        request=TextsBodySerializer,
        responses={200: TextsOutputSerializer},
    )
    def post(self, request):
        scope = _partner_scope(request)
        body = TextsBodySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        current = email_branding(partner=scope.partner)
        texts = {}
        for kind, text in body.validated_data["texts"].items():
            subject, intro = current.text_for(kind)
            texts[kind] = (text.get("subject", subject), text.get("intro", intro))
        try:
            email_texts_save(scope=scope, texts=texts, actor=request.user)
        except SmtpValidationError as error:
            fields: dict[str, dict[str, list[str]]] = {}
            for name, messages in error.errors.items():
                part, _, kind = name.partition("_")
                fields.setdefault(kind, {})[part] = messages
            raise serializers.ValidationError({"texts": fields}) from error
        return _answer(scope)
