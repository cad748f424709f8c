"""The verify: a user's code, checked by Cognito, makes a pending enrollment verified.

One sequence for both flows: take the verify lease, read the failure budget under it, decrypt
the stored credential, ask Cognito; then the flow's own step (turn TOTP on with the access
token, or complete the sign-in challenge) and the row marked verified, once whatever the
concurrency.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from .. import crypto, signals
from .. import exceptions as exc
from ..cognito import CognitoClient, VerifyResult, get_client
from ..conf import app_settings
from ..models import AuditEvent, Enrollment, EnrollmentFlow, EnrollmentStatus
from . import clock, events, verify_lease
from .challenge import complete_challenge, open_challenge_claim
from .context import Context
from .ending import expire_enrollment, record_end
from .enrollment import get_enrollment_for_user
from .failures import check_failure_budget, count_failure, reset_failure_budget
from .preference import turn_on_totp
from .results import Accepted, VerifiedEnrollment

logger = logging.getLogger("cognito_mfa.flows")

Kind = AuditEvent.Kind


@sensitive_variables("user_code")
def verify_enrollment(
    context: Context,
    *,
    enrollment: Enrollment,
    user_code: str,
    device_name: str | None = None,
) -> VerifiedEnrollment:
    """Verify ``user_code`` with Cognito using the enrollment's stored credential.

    On success the enrollment becomes verified (once, whatever the concurrency) and TOTP is
    turned on in Cognito; the caller receives what the flow needs next.
    """
    lease = verify_lease.claim(enrollment, context)
    return _verify_leased(context, enrollment, lease, user_code, device_name)


@sensitive_variables("user_code")
def verify_own_enrollment(
    context: Context,
    *,
    user: Any,
    enrollment_id: Any,
    user_code: str,
    device_name: str | None = None,
) -> VerifiedEnrollment:
    """:func:`verify_enrollment` of the user's own access-token enrollment ``enrollment_id``
    (the API's verify). NotFound for an unknown id, someone else's or a sign-in challenge's
    enrollment (that one opens only with its challenge token)."""
    enrollment = get_enrollment_for_user(user, enrollment_id)
    if enrollment.flow != EnrollmentFlow.ACCESS_TOKEN:
        raise exc.NotFound()
    lease = verify_lease.claim(enrollment, context)
    return _verify_leased(context, enrollment, lease, user_code, device_name)


# Django's error reports show frame locals (the DEBUG page, AdminEmailHandler's HTML, trackers
# reading them): the functions below name the locals that hold the decrypted credential, the
# user's code, a Session or tokens, so those reports show stars instead.
@sensitive_variables("credential", "user_code", "claim", "result", "accepted")
def _verify_leased(
    context: Context,
    enrollment: Enrollment,
    lease: datetime,
    user_code: str,
    device_name: str | None,
) -> VerifiedEnrollment:
    """The verify itself, once this request holds the enrollment's verify ``lease``."""
    failures_on_record = _failures_on_record(context, enrollment, lease)
    credential = _decrypt_credential(enrollment, lease)
    device_name = device_name or enrollment.friendly_device_name
    client = get_client()
    accepted: Accepted
    if enrollment.flow == EnrollmentFlow.CHALLENGE:
        # A challenge row's credential holds its Session and the claimed name (never a column).
        claim = open_challenge_claim(enrollment, credential)
        result = _check_code(
            context, enrollment, lease, client, user_code, device_name, session=claim.session
        )
        accepted = complete_challenge(context, enrollment, lease, client, claim, result.session)
    else:
        _check_code(
            context, enrollment, lease, client, user_code, device_name, access_token=credential
        )
        turned_on = turn_on_totp(client, credential, app_settings.SET_PREFERRED)
        accepted = Accepted(preference_owed=not turned_on, preference_set=turned_on)
    # A claim no tokens proved names nobody whose wrong codes a success could forget.
    reset_failures = failures_on_record and not accepted.unproven_claim
    enrollment = _mark_verified(context, enrollment, lease, device_name, accepted, reset_failures)
    if accepted.completion_outcome is not None:
        # Whether the server-side RespondToAuthChallenge handed out tokens (never the tokens).
        events.record(
            Kind.CHALLENGE_COMPLETED,
            context,
            enrollment=enrollment,
            outcome=accepted.completion_outcome,
        )
    return VerifiedEnrollment(
        enrollment=enrollment,
        mfa_enabled=not accepted.preference_owed,
        preferred=app_settings.SET_PREFERRED and not accepted.preference_owed,
        session=accepted.session,
        authentication_result=accepted.authentication_result,
    )


def _failures_on_record(context: Context, enrollment: Enrollment, lease: datetime) -> bool:
    """Raise Throttled (the lease given up) while the user backs off; return whether a
    success has wrong codes to forget.

    Read under the lease: wrong codes are only counted by the lease holder, so the read is
    exact and queued requests cannot overshoot the hard limit. Admin acts neither check nor
    skip the reset; a sign-in challenge's claim spends no one's budget.
    """
    if context.source == "admin" or enrollment.flow == EnrollmentFlow.CHALLENGE:
        return True
    try:
        return check_failure_budget(enrollment.cognito_username)
    except exc.Throttled:
        verify_lease.release(enrollment, lease)
        raise


def _decrypt_credential(enrollment: Enrollment, lease: datetime) -> str:
    """The stored access token or challenge claim; CognitoConfigurationError (the lease given
    up) when no current key opens it."""
    try:
        return crypto.decrypt(enrollment.encrypted_credential or b"")
    except crypto.CredentialUndecryptable:
        verify_lease.release(enrollment, lease)
        logger.error("cognito_mfa: enrollment credential cannot be decrypted with current keys")
        raise exc.CognitoConfigurationError() from None


@sensitive_variables("user_code", "access_token", "session")
def _check_code(
    context: Context,
    enrollment: Enrollment,
    lease: datetime,
    client: CognitoClient,
    user_code: str,
    device_name: str,
    *,
    access_token: str | None = None,
    session: str | None = None,
) -> VerifyResult:
    """Ask Cognito whether ``user_code`` is right (``VerifySoftwareToken``).

    A wrong code is counted (InvalidCode); a credential Cognito no longer takes expires the
    row (EnrollmentExpired); any other failure (Cognito unreachable, throttling, a bad
    configuration) is not the user's fault and leaves the row as it was.
    """
    try:
        return client.verify_software_token(
            access_token=access_token,
            session=session,
            user_code=user_code,
            device_name=device_name or None,
        )
    except exc.InvalidCode:
        remaining = _record_wrong_code(enrollment, context, lease)
        raise exc.InvalidCode(attempts_remaining=remaining) from None
    except exc.CredentialRejected:
        expire_enrollment(enrollment, context, lease=lease)
        raise exc.EnrollmentExpired() from None
    except BaseException:
        verify_lease.release(enrollment, lease)
        raise


def _record_wrong_code(enrollment: Enrollment, context: Context, lease: datetime) -> int:
    """Count a rejected code; lock at the cap. Return the attempts remaining.

    Raise EnrollmentNotPending if the row ended (or our lease ran out) while Cognito answered:
    the wrong code still counts against the user, but the row is no longer ours to change.
    A sign-in challenge's wrong code counts against its enrollment only: the username it names
    is a claim, and a stranger's wrong codes must not back the named user off.
    """
    cap = app_settings.MAX_ATTEMPTS
    with transaction.atomic():
        row, ours = Enrollment.objects.record_wrong_code(
            enrollment.pk, lease=lease, at=clock.now(), max_attempts=cap
        )
        if row.flow != EnrollmentFlow.CHALLENGE:
            count_failure(row.cognito_username)
        if ours:
            remaining = max(cap - row.attempts, 0)
            events.record(
                Kind.VERIFICATION_FAILED,
                context,
                enrollment=row,
                outcome="invalid_code",
                detail={"attempts_remaining": remaining},
                signal=signals.verification_failed,
                signal_kwargs={"code": "invalid_code", "attempts_remaining": remaining},
            )
            if row.status == EnrollmentStatus.LOCKED:
                record_end(row, context)
    if not ours:
        raise exc.EnrollmentNotPending()
    enrollment.attempts, enrollment.status = row.attempts, row.status
    enrollment.encrypted_credential = row.encrypted_credential
    return remaining


@sensitive_variables("accepted")
def _mark_verified(
    context: Context,
    enrollment: Enrollment,
    lease: datetime,
    device_name: str,
    accepted: Accepted,
    reset_failures: bool,
) -> Enrollment:
    """Record the verify Cognito accepted, audit it and announce it (and TOTP turned on, if
    it was just now). Raise EnrollmentNotPending if the row ended while Cognito answered."""
    timestamp = clock.now()
    verified_by = context.actor_for(enrollment.user)
    with transaction.atomic():
        changed = Enrollment.objects.mark_verified(
            enrollment.pk,
            lease=lease,
            at=timestamp,
            verified_by=verified_by,
            device_name=device_name,
            preference_pending=accepted.preference_owed,
            user=accepted.proven_user,
            cognito_username=accepted.proven_username,
        )
        if not changed:
            # Our lease ran out while Cognito answered and the row ended meanwhile. Cognito has
            # the device regardless: leave a trace for the operator, then report the conflict.
            logger.warning("cognito_mfa: verified by Cognito after the enrollment had ended")
            events.record(
                Kind.VERIFIED,
                context,
                enrollment=enrollment,
                outcome="enrollment_not_pending",
                detail={"late": True},
            )
        else:
            enrollment.status = EnrollmentStatus.VERIFIED
            enrollment.verified_at, enrollment.verified_by = timestamp, verified_by
            enrollment.finished_at, enrollment.friendly_device_name = timestamp, device_name
            enrollment.encrypted_credential, enrollment.verify_lease_until = None, None
            enrollment.preference_pending = accepted.preference_owed
            if reset_failures:
                reset_failure_budget(enrollment.cognito_username)
            events.record(
                Kind.VERIFIED,
                context,
                enrollment=enrollment,
                detail={
                    **({"preference_pending": True} if accepted.preference_owed else {}),
                    # The device belongs to the Session's user; the username is only claimed.
                    **({"claim": "unproven"} if accepted.unproven_claim else {}),
                },
                signal=signals.software_token_verified,
                signal_kwargs={"friendly_device_name": device_name},
            )
            if accepted.preference_set:
                events.announce(
                    signals.mfa_preference_changed,
                    context,
                    user=enrollment.user,
                    enabled=True,
                    preferred=app_settings.SET_PREFERRED,
                )
    if not changed:
        raise exc.EnrollmentNotPending()
    return enrollment
