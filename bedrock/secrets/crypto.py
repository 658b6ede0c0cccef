"""Encryption at rest for secret values, with Fernet keys from ``BEDROCK_SECRET_KEYS``.

Keys are listed newest first: the newest encrypts, every key decrypts, so a new key can be
prepended and ``bedrock rotatesecrets`` run at leisure before the old key is dropped.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models


class SecretDecryptionError(Exception):
    """A stored value no configured key can decrypt. Never answered with the ciphertext."""


@lru_cache(maxsize=8)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def fernet() -> MultiFernet:
    # Read the setting each time so that rotation and tests see the current keys.
    return _fernet(tuple(settings.BEDROCK_SECRET_KEYS))


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretDecryptionError(
            "A secret cannot be decrypted with any key in BEDROCK_SECRET_KEYS; "
            "was a key removed before `bedrock rotatesecrets` ran?"
        ) from exc


class EncryptedTextField(models.TextField):
    """A text column that holds only Fernet ciphertext in the database."""

    def get_prep_value(self, value: object) -> str | None:
        value = super().get_prep_value(value)
        if value is None:
            return None
        return encrypt(str(value))

    def from_db_value(
        self, value: str | None, expression: object, connection: object
    ) -> str | None:
        if value is None:
            return None
        return decrypt(value)
