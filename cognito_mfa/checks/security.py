"""What keeps the app's secrets safe: the encryption keys (E004, E005), the credentials stored
under them (E008), and signing keys fetched over https (W001)."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import DatabaseError, router, transaction
from django.utils.translation import gettext as _

from .. import crypto
from ..conf import app_settings
from ..models import Enrollment, EnrollmentStatus


def check_encryption_keys() -> list[CheckMessage]:
    """Report an ENCRYPTION_KEYS setting of the wrong shape, an empty one, or keys that are
    not Fernet keys."""
    try:
        keys = app_settings.ENCRYPTION_KEYS
    except TypeError:
        return [
            Error(
                _(
                    "COGNITO_MFA_ENCRYPTION_KEYS is neither a list of Fernet keys nor a "
                    "comma-separated string."
                ),
                hint=_("List the keys newest first, e.g. [os.environ['MFA_KEY']]."),
                id="cognito_mfa.E005",
            )
        ]
    if not keys:
        return [
            Error(
                _("COGNITO_MFA_ENCRYPTION_KEYS is empty: stored credentials cannot be encrypted."),
                hint=_("Generate a key with: %(command)s")
                % {
                    "command": "python -c 'from cryptography.fernet import Fernet; "
                    "print(Fernet.generate_key().decode())'"
                },
                id="cognito_mfa.E004",
            )
        ]
    from cryptography.fernet import Fernet

    problems: list[CheckMessage] = []
    for index, key in enumerate(keys):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            problems.append(
                Error(
                    _("COGNITO_MFA_ENCRYPTION_KEYS[%(index)d] is not a valid Fernet key.")
                    % {"index": index},
                    hint=_("A Fernet key is 32 random bytes, url-safe base64-encoded."),
                    id="cognito_mfa.E005",
                )
            )
    return problems


@register(Tags.security, deploy=True)
def check_jwks_url(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if app_settings.REGION and app_settings.USER_POOL_ID:
        url = app_settings.JWKS_URL
        if not url.startswith("https://"):
            return [
                Warning(
                    _(
                        "COGNITO_MFA_JWKS_URL is not https: signing keys could be replaced in "
                        "transit."
                    ),
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
            _(
                "%(stranded)d of %(sampled)d sampled pending enrollments hold a credential that "
                "no key in COGNITO_MFA_ENCRYPTION_KEYS decrypts; verifying them would fail."
            )
            % {"stranded": stranded, "sampled": len(sample)},
            hint=_(
                "Put the key they were encrypted with back into COGNITO_MFA_ENCRYPTION_KEYS "
                "(after the current key), run `manage.py rotate_encryption_keys`, and only then "
                "remove it. If the key is lost for good, these enrollments run out within "
                "COGNITO_MFA_ENROLLMENT_TTL and their users start a new one."
            ),
            id="cognito_mfa.E008",
        )
    ]
