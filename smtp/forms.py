"""The SMTP configuration form: type conversion only; the rules live in validators."""

from __future__ import annotations

from django import forms

from smtp.enums import BRANDED_KINDS, EmailKind, Security, security_from_tls
from smtp.identity import LOGO_MAX_BYTES
from smtp.models import SmtpConfiguration
from smtp.validators import PORT_MESSAGE, RETRIES_MESSAGE, SmtpInput

AUTO_TLS_MODE = ""
TLS_MODE_CHOICES = [
    (AUTO_TLS_MODE, "Automatic: implicit TLS on port 465, STARTTLS on other ports"),
    (Security.STARTTLS.value, "STARTTLS (required, on any port)"),
    (Security.SSL.value, "Implicit TLS / SMTPS (on any port)"),
]


class SmtpConfigForm(forms.Form):
    """Host, Port, TLS, Username, Password (+ Insecure, Retries, Sender, TLS mode)."""

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
    use_tls = forms.BooleanField(required=False, label="TLS")
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
        label="Insecure: skip certificate verification",
    )
    tls_mode = forms.ChoiceField(
        required=False, choices=TLS_MODE_CHOICES, label="TLS mode"
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

    # The validators' field names, mapped to this form's fields.
    FIELD_FOR_RULE = {"security": "tls_mode"}

    @classmethod
    def initial_for(cls, configuration: SmtpConfiguration | None) -> dict:
        """Initial values of a stored configuration (never its password)."""
        if configuration is None:
            return {"port": 587, "use_tls": True, "retries": 3}
        derived = security_from_tls(
            use_tls=configuration.use_tls, port=configuration.port
        )
        mode = AUTO_TLS_MODE
        if configuration.security != derived:
            mode = configuration.security
        return {
            "host": configuration.host,
            "port": configuration.port,
            "use_tls": configuration.use_tls,
            "tls_mode": mode,
            "use_insecure": configuration.use_insecure,
            "username": configuration.username,
            "retries": configuration.retries,
            "sender_email": configuration.sender_email,
            "sender_name": configuration.sender_name,
            "reply_to": configuration.reply_to,
            "bounce_address": configuration.bounce_address,
        }

    def to_input(self) -> SmtpInput:
        data = self.cleaned_data
        return SmtpInput(
            host=data.get("host") or "",
            port=data.get("port"),
            use_tls=bool(data.get("use_tls")),
            security=data.get("tls_mode") or None,
            use_insecure=bool(data.get("use_insecure")),
            username=data.get("username") or "",
            password=data.get("password") or None,
            retries=data.get("retries"),
            sender_email=data.get("sender_email") or "",
            sender_name=data.get("sender_name") or "",
            reply_to=data.get("reply_to") or "",
            bounce_address=data.get("bounce_address") or "",
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
