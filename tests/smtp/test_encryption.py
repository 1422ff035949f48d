"""Passwords are encrypted at rest, and keys rotate without losing them."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from fernet_fields.hkdf import derive_fernet_key

from smtp.models import Security, SmtpConfiguration

pytestmark = pytest.mark.django_db

CANARY = "canary-at-rest-pw-4Kz"


def stored_token(pk: int) -> bytes:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT password FROM smtp_smtpconfiguration WHERE id = %s", [pk]
        )
        return bytes(cursor.fetchone()[0])


def create(demo) -> SmtpConfiguration:
    return SmtpConfiguration.objects.create(
        partner=demo["acme"],
        host="smtp.acme.example",
        port=587,
        security=Security.STARTTLS,
        username="mailer@acme.example",
        password=CANARY,
    )


def fernet(key: str) -> Fernet:
    return Fernet(derive_fernet_key(key))


def test_the_encrypted_column_holds_no_plaintext(demo, settings):
    configuration = create(demo)
    token = stored_token(configuration.pk)
    assert CANARY.encode() not in token
    assert token.startswith(b"gAAAAA")  # a Fernet token
    assert fernet(settings.FERNET_KEYS[0]).decrypt(token) == CANARY.encode()


def test_rotation_re_encrypts_with_the_new_key_and_old_keys_stay_readable(demo):
    with override_settings(FERNET_KEYS=["old-key-1"]):
        configuration = create(demo)
    with override_settings(FERNET_KEYS=["new-key-2", "old-key-1"]):
        # Before rotation: still readable through the old key.
        assert SmtpConfiguration.objects.get().password == CANARY
        call_command("rotate_fernet_keys", verbosity=0)
        token = stored_token(configuration.pk)
        assert fernet("new-key-2").decrypt(token) == CANARY.encode()
        with pytest.raises(InvalidToken):
            fernet("old-key-1").decrypt(token)
    # The old key can now be removed.
    with override_settings(FERNET_KEYS=["new-key-2"]):
        assert SmtpConfiguration.objects.get().password == CANARY


def test_rotation_keeps_updated_at(demo, settings):
    configuration = create(demo)
    with override_settings(FERNET_KEYS=["new-key-3", *settings.FERNET_KEYS]):
        call_command("rotate_fernet_keys", verbosity=0)
        configuration_after = SmtpConfiguration.objects.get()
    assert configuration_after.updated_at == configuration.updated_at
