"""The SMTP configuration form: type conversion only; the rules live in validators."""

from __future__ import annotations

from django import forms
from django.conf import settings

from smtp.enums import (
    BRANDED_KINDS,
    OAUTH2_DEFAULT_SCOPES,
    AuthMethod,
    EmailKind,
    OAuth2Provider,
    Security,
)
from smtp.identity import LOGO_MAX_BYTES
from smtp.models import SmtpConfiguration
from smtp.validators import (
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_MESSAGE,
    MAX_MESSAGES_PER_MINUTE,
    MESSAGES_PER_MINUTE_MESSAGE,
    PORT_MESSAGE,
    RETRIES_MESSAGE,
    SmtpInput,
)

# One choice for how the connection is protected (the page picks it from the
# port until the admin does); the API keeps use_tls and security.
SECURITY_CHOICES = [
    (Security.NONE.value, "None: plain SMTP, not encrypted"),
    (Security.STARTTLS.value, "STARTTLS (required)"),
    (Security.SSL.value, "Implicit TLS (SMTPS)"),
]


class WriteOnlyTextarea(forms.Textarea):
    """A textarea that never renders its value, not even after a failed save
    (a private key, a service account key)."""

    def format_value(self, value):
        return None


PROVIDER_CHOICES = [("", "Choose a provider"), *OAuth2Provider.choices]
SCOPE_PLACEHOLDER = "; ".join(
    f"{OAuth2Provider(name).label.split(' (')[0]}: {scope}"
    for name, scope in OAUTH2_DEFAULT_SCOPES.items()
    if scope
)


class SmtpConfigForm(forms.Form):
    """Host, Port, Security, Username, Password (+ certificate check, Retries,
    Sender, ...)."""

    host = forms.CharField(
        required=False,
        max_length=253,
        strip=False,
        widget=forms.TextInput(
            attrs={
                "placeholder": "smtp.example.com",
                "autocomplete": "off",
                "spellcheck": "false",
                "autocapitalize": "none",
            }
        ),
        help_text="Fully qualified domain name or IP address of the SMTP server.",
    )
    port = forms.IntegerField(
        required=False,
        error_messages={"invalid": PORT_MESSAGE},
        widget=forms.NumberInput(
            attrs={"min": 1, "max": 65535, "inputmode": "numeric"}
        ),
    )
    security = forms.ChoiceField(
        required=False,
        choices=SECURITY_CHOICES,
        widget=forms.RadioSelect,
        label="Security",
    )
    username = forms.CharField(
        required=False,
        max_length=1024,
        strip=False,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text="Email address or username for SMTP authentication.",
    )
    password = forms.CharField(
        required=False,
        strip=False,
        max_length=4096,
        # Write-only: never rendered back, not even after a failed save.
        widget=forms.PasswordInput(
            render_value=False, attrs={"autocomplete": "new-password"}
        ),
    )
    use_insecure = forms.BooleanField(
        required=False,
        label="Skip certificate verification (insecure)",
    )
    retries = forms.IntegerField(
        required=False,
        error_messages={"invalid": RETRIES_MESSAGE},
        widget=forms.NumberInput(attrs={"min": 0, "max": 10, "inputmode": "numeric"}),
        help_text="How many times a failed email is retried (0-10).",
    )
    sender_email = forms.CharField(
        required=False,
        max_length=1024,
        strip=False,
        label="Sender",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text="The From address. Empty: the username, if it is an email address.",
    )

    auth_method = forms.ChoiceField(
        required=False,
        choices=AuthMethod.choices,
        label="Authentication",
    )
    oauth2_provider = forms.ChoiceField(
        required=False, choices=PROVIDER_CHOICES, label="Provider"
    )
    oauth2_tenant_id = forms.CharField(
        required=False,
        max_length=253,
        label="Tenant ID",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text="Directory (tenant) ID from the app's Overview page in Entra.",
    )
    oauth2_client_id = forms.CharField(
        required=False,
        max_length=1024,
        label="Client ID",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text="Application (client) ID of the registered app.",
    )
    oauth2_client_secret = forms.CharField(
        required=False,
        strip=False,
        max_length=4096,
        label="Client secret",
        # Write-only: never rendered back, not even after a failed save.
        widget=forms.PasswordInput(
            render_value=False, attrs={"autocomplete": "new-password"}
        ),
    )
    oauth2_client_secret_expires_on = forms.DateField(
        required=False,
        label="Client secret expires on",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text="Optional: a banner and an audit event warn 14 days before.",
    )
    oauth2_token_url = forms.CharField(
        required=False,
        max_length=2000,
        label="Token URL",
        widget=forms.URLInput(
            attrs={"placeholder": "https://auth.example.com/oauth2/token"}
        ),
    )
    oauth2_service_account_key = forms.CharField(
        required=False,
        strip=False,
        max_length=16 * 1024,
        label="Service account key",
        widget=WriteOnlyTextarea(
            attrs={"rows": 4, "spellcheck": "false", "autocomplete": "off"}
        ),
    )
    oauth2_scope = forms.CharField(
        required=False,
        max_length=1024,
        label="Scope",
        widget=forms.TextInput(
            attrs={
                "placeholder": "Empty: the provider's default",
                "spellcheck": "false",
            }
        ),
        help_text=f"Empty: the provider's default ({SCOPE_PLACEHOLDER}).",
    )
    client_cert = forms.CharField(
        required=False,
        strip=False,
        max_length=32768,
        label="Client certificate",
        widget=forms.Textarea(
            attrs={
                "rows": 4,
                "spellcheck": "false",
                "placeholder": "-----BEGIN CERTIFICATE-----",
            }
        ),
        help_text="For servers that authenticate this console by certificate "
        "(mutual TLS): the certificate, PEM, optionally followed by its chain. "
        "Empty: keep the stored one.",
    )
    client_key = forms.CharField(
        required=False,
        strip=False,
        max_length=16384,
        label="Client key",
        # Write-only: never rendered back, not even after a failed save.
        widget=WriteOnlyTextarea(
            attrs={
                "rows": 4,
                "spellcheck": "false",
                "autocomplete": "off",
                "placeholder": "-----BEGIN PRIVATE KEY-----",
            }
        ),
        help_text="The certificate's private key, PEM, without a passphrase. "
        "Stored encrypted and never shown again; empty: keep the stored key.",
    )
    sender_name = forms.CharField(
        required=False,
        max_length=1024,
        strip=False,
        label="Sender name",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
        help_text="Display name in From, e.g. Acme Ops. Empty: inherited.",
    )
    reply_to = forms.CharField(
        required=False,
        max_length=1024,
        strip=False,
        label="Reply-To",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text="Where replies go. Empty: inherited, else no Reply-To.",
    )
    bounce_address = forms.CharField(
        required=False,
        max_length=1024,
        strip=False,
        label="Bounce address",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text="Envelope sender (MAIL FROM), where bounces go. Empty: inherited, "
        "else the sender address.",
    )

    messages_per_minute = forms.IntegerField(
        required=False,
        label="Messages per minute",
        error_messages={"invalid": MESSAGES_PER_MINUTE_MESSAGE},
        widget=forms.NumberInput(
            attrs={"min": 0, "max": MAX_MESSAGES_PER_MINUTE, "inputmode": "numeric"}
        ),
    )
    max_connections = forms.IntegerField(
        required=False,
        label="Max concurrent connections",
        error_messages={"invalid": MAX_CONNECTIONS_MESSAGE},
        widget=forms.NumberInput(
            attrs={"min": 0, "max": MAX_CONNECTIONS, "inputmode": "numeric"}
        ),
    )
    failover = forms.BooleanField(required=False)

    # The validators' field names, mapped to this form's fields.
    FIELD_FOR_RULE = {"use_tls": "security"}

    def __init__(self, *args, failover_to: str | None = None, **kwargs):
        """``failover_to``: the label of the level this configuration would fail
        over to; without one, there is no Failover choice."""
        super().__init__(*args, **kwargs)
        per_minute = settings.SMTP_DEFAULT_MESSAGES_PER_MINUTE
        connections = settings.SMTP_DEFAULT_MAX_CONNECTIONS
        self.fields["messages_per_minute"].help_text = (
            f"Default: {per_minute or 'no limit'} "
            "(SMTP_DEFAULT_MESSAGES_PER_MINUTE), used when empty. 0: no limit. "
            "Emails over the limit wait; they keep their retries."
        )
        self.fields["max_connections"].help_text = (
            f"Default: {connections or 'no limit'} (SMTP_DEFAULT_MAX_CONNECTIONS), "
            "used when empty. 0: no limit."
        )
        if failover_to is None:
            del self.fields["failover"]
        else:
            self.fields["failover"].label = (
                f"Fail over to the {failover_to} configuration when this server "
                "cannot be reached"
            )
            self.fields["failover"].help_text = (
                "When the connection, TLS or authentication fails, emails go "
                f"through the {failover_to} configuration instead of waiting for "
                "a retry. Never for a refused recipient or message; test emails "
                "always use this server."
            )

    @classmethod
    def initial_for(cls, configuration: SmtpConfiguration | None) -> dict:
        """Initial values of a stored configuration (never its password)."""
        if configuration is None:
            return {
                "port": 587,
                "security": Security.STARTTLS.value,
                "retries": 3,
                "auth_method": AuthMethod.PASSWORD,
            }
        return {
            "host": configuration.host,
            "port": configuration.port,
            "security": configuration.security,
            "use_insecure": configuration.use_insecure,
            "username": configuration.username,
            "retries": configuration.retries,
            "sender_email": configuration.sender_email,
            "auth_method": configuration.auth_method,
            "oauth2_provider": configuration.oauth2_provider,
            "oauth2_tenant_id": configuration.oauth2_tenant_id,
            "oauth2_client_id": configuration.oauth2_client_id,
            "oauth2_client_secret_expires_on": (
                configuration.oauth2_client_secret_expires_on
            ),
            "oauth2_token_url": configuration.oauth2_token_url,
            "oauth2_scope": configuration.oauth2_scope,
            "sender_name": configuration.sender_name,
            "reply_to": configuration.reply_to,
            "bounce_address": configuration.bounce_address,
            "messages_per_minute": configuration.messages_per_minute,
            "max_connections": configuration.max_connections,
            "failover": configuration.failover,
        }

    def to_input(self) -> SmtpInput:
        data = self.cleaned_data
        if data.get("auth_method") != AuthMethod.OAUTH2:
            # The OAuth2 fields of a form switched to another method (hidden on
            # the page, still posted) are not part of what was chosen.
            data = {k: v for k, v in data.items() if not k.startswith("oauth2_")}
        # Not chosen (a client without the radio buttons): plain SMTP, as an
        # unticked TLS box was.
        security = data.get("security") or Security.NONE.value
        use_tls = security != Security.NONE
        return SmtpInput(
            host=data.get("host") or "",
            port=data.get("port"),
            use_tls=use_tls,
            security=security if use_tls else None,
            # Only with TLS: the box is hidden (and meaningless) without it.
            use_insecure=use_tls and bool(data.get("use_insecure")),
            username=data.get("username") or "",
            password=data.get("password") or None,
            retries=data.get("retries"),
            sender_email=data.get("sender_email") or "",
            auth_method=data.get("auth_method") or None,
            oauth2_provider=data.get("oauth2_provider") or "",
            oauth2_tenant_id=data.get("oauth2_tenant_id") or "",
            oauth2_client_id=data.get("oauth2_client_id") or "",
            oauth2_client_secret=data.get("oauth2_client_secret") or None,
            oauth2_scope=data.get("oauth2_scope") or "",
            oauth2_token_url=data.get("oauth2_token_url") or "",
            oauth2_service_account_key=data.get("oauth2_service_account_key") or None,
            oauth2_client_secret_expires_on=data.get("oauth2_client_secret_expires_on"),
            # Empty: keep the stored certificate and key (removal is a button).
            client_cert=(data.get("client_cert") or "").strip() or None,
            client_key=data.get("client_key") or None,
            sender_name=data.get("sender_name") or "",
            reply_to=data.get("reply_to") or "",
            bounce_address=data.get("bounce_address") or "",
            messages_per_minute=data.get("messages_per_minute"),
            max_connections=data.get("max_connections"),
            # Not offered (no level below): the stored choice stays.
            failover=bool(data["failover"]) if "failover" in self.fields else None,
        )

    def rule_fields(self, errors: dict[str, list[str]]) -> dict[str, list[str]]:
        """The rule errors by the name of the form field they belong to."""
        fields: dict[str, list[str]] = {}
        for rule_field, messages in errors.items():
            name = self.FIELD_FOR_RULE.get(rule_field, rule_field)
            fields.setdefault(name, []).extend(messages)
        return fields

    def add_rule_errors(self, errors: dict[str, list[str]]) -> None:
        for name, messages in self.rule_fields(errors).items():
            for message in messages:
                self.add_error(name if name in self.fields else None, message)


class SenderDomainsForm(forms.Form):
    """The partner's allowed sender domains, one a line (or comma-separated)."""

    allowed_sender_domains = forms.CharField(
        required=False,
        max_length=5000,
        label="Allowed sender domains",
        widget=forms.Textarea(
            attrs={"rows": 4, "spellcheck": "false", "autocapitalize": "none"}
        ),
        help_text="One a line: acme.example, or *.acme.example for its subdomains. "
        "The Sender, Reply-To and bounce address of the partner's and every "
        "organization's configuration must be at one of them. Empty: any domain.",
    )

    def domains(self) -> list[str]:
        text = self.cleaned_data.get("allowed_sender_domains") or ""
        return [part for part in text.replace(",", "\n").splitlines() if part.strip()]


class BrandingForm(forms.Form):
    """The partner's branding of system emails; the rules live in smtp.identity."""

    product_name = forms.CharField(
        required=False,
        max_length=1024,
        label="Product name",
        help_text="Shown at the top of every email and in {{ product_name }}. "
        "Empty: Ops Console.",
    )
    primary_color = forms.CharField(
        required=False,
        max_length=64,
        label="Primary colour",
        widget=forms.TextInput(attrs={"placeholder": "#1d4ed8", "spellcheck": "false"}),
        help_text="Buttons and links, as # and six hex digits.",
    )
    footer = forms.CharField(
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Plain text under every email, e.g. your company's address.",
    )
    support_email = forms.CharField(
        required=False,
        max_length=1024,
        label="Support address",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text="Named under every email as the address for questions.",
    )
    logo = forms.FileField(
        required=False,
        help_text="PNG, JPEG or GIF, at most 100 KB; shown 40 px high.",
        widget=forms.ClearableFileInput(
            attrs={"accept": "image/png,image/jpeg,image/gif"}
        ),
    )
    remove_logo = forms.BooleanField(required=False, label="Remove the logo")

    @classmethod
    def initial_for(cls, identity) -> dict:
        if identity is None:
            return {}
        return {name: getattr(identity, name) for name in BRANDING_FORM_FIELDS}

    def logo_bytes(self) -> bytes | None:
        """The uploaded logo's bytes, read up to one byte past the limit."""
        upload = self.cleaned_data.get("logo")
        if not upload:
            return None
        return upload.read(LOGO_MAX_BYTES + 1)


BRANDING_FORM_FIELDS = ("product_name", "primary_color", "footer", "support_email")


class EmailTextsForm(forms.Form):
    """A subject and an intro per kind of email, with placeholders."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for kind in BRANDED_KINDS:
            label = EmailKind(kind).label
            self.fields[f"subject_{kind}"] = forms.CharField(
                required=False,
                max_length=2000,
                label=f"Subject of {label}",
            )
            self.fields[f"intro_{kind}"] = forms.CharField(
                required=False,
                max_length=5000,
                label=f"Intro of {label}",
                widget=forms.Textarea(attrs={"rows": 3}),
            )

    @staticmethod
    def initial_for(texts: tuple[tuple[str, str, str], ...]) -> dict:
        initial: dict[str, str] = {}
        for kind, subject, intro in texts:
            initial[f"subject_{kind}"] = subject
            initial[f"intro_{kind}"] = intro
        return initial

    def texts(self) -> dict[str, tuple[str, str]]:
        data = self.cleaned_data
        return {
            kind: (data.get(f"subject_{kind}") or "", data.get(f"intro_{kind}") or "")
            for kind in BRANDED_KINDS
        }

    def kinds(self):
        """(kind label, subject field, intro field), one per kind."""
        return [
            (EmailKind(kind), self[f"subject_{kind}"], self[f"intro_{kind}"])
            for kind in BRANDED_KINDS
        ]
