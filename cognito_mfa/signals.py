"""Signals of cognito_mfa. Each is sent once, after the transaction commits, with
``sender`` = :class:`cognito_mfa.models.Enrollment`. ``source`` is one of ``"api"``,
``"challenge"``, ``"admin"``, ``"command"``; ``actor`` is the admin for admin acts, else the
user. No kwarg ever carries a token, Session, secret or code.
"""

from django.dispatch import Signal

# Each comment below (``#:``) is the signal's documentation, which the docs site renders.

#: A new pending enrollment exists (the secret was shown once).
#: kwargs: enrollment, user, request, source
enrollment_started = Signal()

#: Cognito accepted the code: the device is the user's software token.
#: kwargs: enrollment, user, request, source, actor, friendly_device_name
software_token_verified = Signal()

#: Cognito rejected a code. ``code`` is the error code (e.g. "invalid_code"), not the digits.
#: kwargs: enrollment, user, request, source, actor, code, attempts_remaining
verification_failed = Signal()

#: Too many wrong codes: the enrollment can no longer be verified.
#: kwargs: enrollment, user, request, source
enrollment_locked = Signal()

#: The enrollment or its stored credential ran out of time.
#: kwargs: enrollment, user, request, source
enrollment_expired = Signal()

#: The enrollment was cancelled (by the user, a newer start, or an admin).
#: kwargs: enrollment, user, request, source
enrollment_cancelled = Signal()

#: The user's TOTP MFA was turned on/off or made (not) preferred.
#: kwargs: user, request, source, actor, enabled, preferred
mfa_preference_changed = Signal()
