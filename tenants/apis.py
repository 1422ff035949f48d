"""JSON login and logout for API users (``POST /auth/v1/login/``)."""

from __future__ import annotations

from django.contrib.auth import authenticate, login, logout
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import StrictSerializer


class UserOutputSerializer(serializers.Serializer):
    email = serializers.EmailField()
    role = serializers.CharField()
    console = serializers.CharField(allow_null=True)
    partner = serializers.SerializerMethodField()
    organization = serializers.SerializerMethodField()

    def get_partner(self, user) -> str | None:
        if user.partner_id:
            return user.partner.slug
        if user.organization_id:
            return user.organization.partner.slug
        return None

    def get_organization(self, user) -> str | None:
        return user.organization.slug if user.organization_id else None


class LoginApi(APIView):
    """Log in with email and password; the answer sets the ``rsid`` session cookie."""

    permission_classes = [AllowAny]

    class InputSerializer(StrictSerializer):
        # Bounded like User.email, before any lookup: longer names were a 500
        # (SQLite's LIKE limit, the lockout table's column).
        username = serializers.CharField(
            max_length=254,
            error_messages={"max_length": "Email must be at most 254 characters."},
            help_text="The user's email address.",
        )
        password = serializers.CharField(trim_whitespace=False)

    @extend_schema(
        request=InputSerializer,
        responses={
            200: inline_serializer("LoginOutput", {"user": UserOutputSerializer()}),
            401: inline_serializer("LoginError", {"error": serializers.CharField()}),
        },
        auth=[],
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = authenticate(
            request._request,
            username=serializer.validated_data["username"].strip(),
            password=serializer.validated_data["password"],
        )
        if user is None:
            return Response(
                {"error": "Invalid email or password."},
                status=status.HTTP_401_UNAUTHORIZED,
            )
        login(request._request, user)
        return Response({"user": UserOutputSerializer(user).data})


class LogoutApi(APIView):
    """End the session."""

    permission_classes = [AllowAny]

    @extend_schema(request=None, responses={204: None})
    def post(self, request):
        logout(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)
