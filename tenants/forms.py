"""Forms of the tenants app."""

from __future__ import annotations

from django import forms
from django.contrib.auth.forms import AuthenticationForm


class EmailAuthenticationForm(AuthenticationForm):
    """Django's login form, asking for an email address."""

    # Bounded like User.email (AuthenticationForm's own bound comes after the
    # field's validators are built), so a longer one never reaches a lookup.
    username = forms.EmailField(
        label="Email",
        max_length=254,
        error_messages={"max_length": "Email must be at most 254 characters."},
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"}),
    )

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "Invalid email or password. Both are case-sensitive "
        "except the email.",
    }


class OrganizationCreateForm(forms.Form):
    """A new organization and its first admin (the rules live in the service)."""

    name = forms.CharField(required=False, max_length=200)
    slug = forms.CharField(
        required=False,
        max_length=63,
        label="Identifier",
        help_text="Lowercase letters, digits and hyphens. Empty: made from the name.",
        widget=forms.TextInput(attrs={"spellcheck": "false", "autocomplete": "off"}),
    )
    admin_email = forms.CharField(
        required=False,
        max_length=254,
        label="Admin email",
        widget=forms.EmailInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    admin_password = forms.CharField(
        required=False,
        strip=False,
        label="Admin password",
        widget=forms.PasswordInput(
            render_value=False, attrs={"autocomplete": "new-password"}
        ),
    )


class PasswordResetRequestForm(forms.Form):
    email = forms.EmailField(
        label="Email",
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )
