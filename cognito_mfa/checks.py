"""System checks: a misconfigured site fails at start-up, never with a 500 later."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.utils.module_loading import import_string

from .conf import app_settings


def _hint(setting: str, example: str) -> str:
    return f"Set COGNITO_MFA_{setting} in your settings, e.g. {example}."


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    if not app_settings.REGION:
        errors.append(
            Error(
                "COGNITO_MFA_REGION is not set.",
                hint=_hint("REGION", '"eu-west-1"'),
                id="cognito_mfa.E001",
            )
        )
    if not app_settings.USER_POOL_ID:
        errors.append(
            Error(
                "COGNITO_MFA_USER_POOL_ID is not set.",
                hint=_hint("USER_POOL_ID", '"eu-west-1_AbCdEf123"'),
                id="cognito_mfa.E002",
            )
        )
    if not app_settings.APP_CLIENT_IDS:
        errors.append(
            Error(
                "COGNITO_MFA_APP_CLIENT_IDS is empty.",
                hint=_hint("APP_CLIENT_IDS", '["1h57kf5cpq17m0eml12EXAMPLE"]'),
                id="cognito_mfa.E003",
            )
        )
    keys = app_settings.ENCRYPTION_KEYS
    if not keys:
        errors.append(
            Error(
                "COGNITO_MFA_ENCRYPTION_KEYS is empty: stored credentials cannot be encrypted.",
                hint="Generate a key with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'",
                id="cognito_mfa.E004",
            )
        )
    else:
        from cryptography.fernet import Fernet

        for index, key in enumerate(keys):
            try:
                Fernet(key)
            except (ValueError, TypeError):
                errors.append(
                    Error(
                        f"COGNITO_MFA_ENCRYPTION_KEYS[{index}] is not a valid Fernet key.",
                        hint="A Fernet key is 32 random bytes, url-safe base64-encoded.",
                        id="cognito_mfa.E005",
                    )
                )
    errors.extend(_check_numbers())
    try:
        import_string(app_settings.ADAPTER)
    except ImportError:
        errors.append(
            Error(
                f"COGNITO_MFA_ADAPTER {app_settings.ADAPTER!r} cannot be imported.",
                id="cognito_mfa.E007",
            )
        )
    return errors


def _check_numbers() -> list[CheckMessage]:
    problems: list[CheckMessage] = []
    try:
        positive = {
            "ENROLLMENT_TTL": timedelta(0) < app_settings.ENROLLMENT_TTL,
            "CHALLENGE_SESSION_TTL": timedelta(0) < app_settings.CHALLENGE_SESSION_TTL,
            "REAUTH_MAX_AGE": timedelta(0) < app_settings.REAUTH_MAX_AGE,
            "MAX_ATTEMPTS": app_settings.MAX_ATTEMPTS > 0,
            "CONNECT_TIMEOUT": app_settings.CONNECT_TIMEOUT > 0,
            "READ_TIMEOUT": app_settings.READ_TIMEOUT > 0,
            "MAX_RETRY_ATTEMPTS": app_settings.MAX_RETRY_ATTEMPTS > 0,
            "ADMIN_REFRESH_CONCURRENCY": app_settings.ADMIN_REFRESH_CONCURRENCY > 0,
        }
    except (TypeError, ValueError) as error:
        return [
            Error(f"A COGNITO_MFA_* number setting is not a number: {error}", id="cognito_mfa.E006")
        ]
    for name, ok in positive.items():
        if not ok:
            problems.append(Error(f"COGNITO_MFA_{name} must be positive.", id="cognito_mfa.E006"))
    return problems


@register(Tags.security, deploy=True)
def check_jwks_url(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if app_settings.REGION and app_settings.USER_POOL_ID:
        url = app_settings.JWKS_URL
        if not url.startswith("https://"):
            return [
                Warning(
                    "COGNITO_MFA_JWKS_URL is not https: signing keys could be replaced in transit.",
                    id="cognito_mfa.W001",
                )
            ]
    return []


# Rows read by the stored-credentials check: the newest and the oldest pending ones (the
# oldest are the ones a removed key strands first).
CREDENTIAL_SAMPLE_SIZE = 10


@register(Tags.database)
def check_stored_credentials(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    """Report pending enrollments whose credential no configured key decrypts."""
    from django.db import DatabaseError, router, transaction

    from . import crypto
    from .models import Enrollment, EnrollmentStatus

    alias = router.db_for_read(Enrollment)
    if not databases or alias not in databases:
        return []
    try:
        crypto.build_fernet()
    except (ValueError, TypeError):
        return []  # E004 / E005 already say what is wrong with the keys
    pending = (
        Enrollment.objects.using(alias)
        .filter(status=EnrollmentStatus.PENDING, encrypted_credential__isnull=False)
        .values_list("pk", "encrypted_credential")
    )
    try:
        # A savepoint, so a missing table (``migrate`` runs this before migrating) cannot
        # break a surrounding transaction.
        with transaction.atomic(using=alias):
            sample = dict(pending.order_by("-created_at")[:CREDENTIAL_SAMPLE_SIZE])
            sample.update(pending.order_by("created_at")[:CREDENTIAL_SAMPLE_SIZE])
    except DatabaseError:
        return []
    stranded = len([stored for stored in sample.values() if not crypto.can_decrypt(stored or b"")])
    if not stranded:
        return []
    return [
        Error(
            f"{stranded} of {len(sample)} sampled pending enrollments hold a credential that no "
            "key in COGNITO_MFA_ENCRYPTION_KEYS decrypts; verifying them would fail.",
            hint="Put the key they were encrypted with back into COGNITO_MFA_ENCRYPTION_KEYS "
            "(after the current key), run `manage.py rotate_encryption_keys`, and only then "
            "remove it. If the key is lost for good, these enrollments run out within "
            "COGNITO_MFA_ENROLLMENT_TTL and their users start a new one.",
            id="cognito_mfa.E008",
        )
    ]
