"""The encrypted field that holds SMTP passwords (django-fernet-fields-v2).

Unlike the library's field, which caches its keys on first use, this one reads
``FERNET_KEYS`` each time (the Fernet objects are cached per key list), so that a
rotation takes effect without a restart and ``rotate_fernet_keys`` re-encrypts
with the current first key.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings
from fernet_fields import EncryptedTextField
from fernet_fields.hkdf import derive_fernet_key


@lru_cache(maxsize=8)
def _fernet_for(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(derive_fernet_key(key)) for key in keys])


class EncryptedSecretField(EncryptedTextField):
    """Text encrypted at rest with the first of ``FERNET_KEYS``; any key decrypts."""

    @property
    def keys(self) -> list[str]:
        return list(settings.FERNET_KEYS)

    @property
    def fernet(self) -> MultiFernet:
        return _fernet_for(tuple(self.keys))
