"""Encryption of the credentials an enrollment keeps (an access token or a challenge Session).

MultiFernet over ``COGNITO_MFA_ENCRYPTION_KEYS``: the first key encrypts, every key decrypts,
so keys rotate without downtime (see ``rotate_encryption_keys``).
"""

from __future__ import annotations

import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.views.decorators.debug import sensitive_variables

from .conf import app_settings


class CredentialUndecryptable(Exception):
    """No configured key decrypts the stored value (a key was removed too early)."""


def build_fernet(keys: list[str] | None = None) -> MultiFernet:
    """Return a MultiFernet for ``keys`` (default: the configured keys).

    Raise ValueError if a key is not a valid Fernet key or there is none.
    """
    keys = app_settings.ENCRYPTION_KEYS if keys is None else keys
    if not keys:
        raise ValueError("COGNITO_MFA_ENCRYPTION_KEYS is empty")
    return _fernet_for(tuple(keys))


@functools.lru_cache(maxsize=4)
def _fernet_for(keys: tuple[str, ...]) -> MultiFernet:
    # Decoding and checking the keys cost more than encrypting a credential; a MultiFernet
    # holds no per-message state, so one per key list serves every thread. A changed key
    # list is a new cache entry.
    return MultiFernet([Fernet(key) for key in keys])


@sensitive_variables("plaintext")
def encrypt(plaintext: str) -> bytes:
    """Encrypt ``plaintext`` under the first configured key."""
    return build_fernet().encrypt(plaintext.encode("utf-8"))


@sensitive_variables()
def decrypt(ciphertext: bytes | memoryview) -> str:
    """Decrypt with any configured key; raise CredentialUndecryptable if none fits."""
    try:
        return build_fernet().decrypt(bytes(ciphertext)).decode("utf-8")
    except InvalidToken as exc:
        raise CredentialUndecryptable("no configured key decrypts this credential") from exc


def rotate(ciphertext: bytes | memoryview) -> bytes:
    """Re-encrypt under the first configured key (keeps the original timestamp)."""
    try:
        return build_fernet().rotate(bytes(ciphertext))
    except InvalidToken as exc:
        raise CredentialUndecryptable("no configured key decrypts this credential") from exc


def is_current(ciphertext: bytes | memoryview) -> bool:
    """Tell whether ``ciphertext`` is already encrypted under the first configured key."""
    keys = app_settings.ENCRYPTION_KEYS
    if not keys:
        return False
    try:
        Fernet(keys[0]).decrypt(bytes(ciphertext))
    except InvalidToken:
        return False
    return True


def can_decrypt(ciphertext: bytes | memoryview) -> bool:
    """Tell whether any configured key decrypts ``ciphertext``."""
    try:
        build_fernet().decrypt(bytes(ciphertext))
    except InvalidToken:
        return False
    return True
