"""Starting, reading and cancelling an enrollment: the user's own (access-token flow) and the
sign-in challenge's (``MFA_SETUP``, driven by the auth Session)."""

from __future__ import annotations

import secrets
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils.translation import gettext_lazy
from django.views.decorators.debug import sensitive_variables

from .. import crypto, signals
from .. import exceptions as exc
from ..adapter import get_adapter
from ..cognito import get_client
from ..conf import app_settings
from ..models import (
    AuditEvent,
    Enrollment,
    EnrollmentFlow,
    EnrollmentStatus,
    lease_free,
    lock_user_row,
)
from ..otpauth import build_otpauth_uri
from . import clock, events, verify_lease
from .challenge import hash_challenge_token, seal_challenge_claim
from .context import Context
from .ending import end_pending, ended
from .failures import check_failure_budget
from .preference import complete_owed, owes_totp_preference
from .results import StartedEnrollment, status_payload
from .step_up import is_recent_authentication

if TYPE_CHECKING:
    from ..tokens import AccessToken

Kind = AuditEvent.Kind

# Each AssociateSoftwareToken replaces the user's key in Cognito, and two starts of one user
# whose calls overlap reach Cognito in an order the app cannot see. A start therefore replaces
# only a pending row written before it asked for its key; otherwise it asks again, so that the
# key it shows is the one Cognito holds. Three asks at most, then 409 (try again). Rows written
# on another host compare by that host's clock: a clock behind ours by more than the time
# between the two asks would hide the crossing, and so would one more than KEY_ASK_WAIT_MAX
# ahead (such a row is replaced as is); NTP-synchronised hosts keep to a few ms.
KEY_ASKS = 3
KEY_ASK_WAIT_MAX = 1.0  # seconds; a row stamped further ahead comes from a clock that is off


# --- reading ----------------------------------------------------------------------------------


def get_enrollment_for_user(user: Any, enrollment_id: Any) -> Enrollment:
    """Return the user's enrollment; raise NotFound for an unknown id or someone else's."""
    enrollment = Enrollment.objects.owned(enrollment_id, user)
    if enrollment is None:
        raise exc.NotFound()
    # The flows read enrollment.user (audit rows, signals): the filter proved it is ``user``,
    # so reuse it rather than load it again.
    enrollment.user = user
    return enrollment


def get_status(*, user: Any, token: AccessToken, context: Context | None = None) -> dict[str, Any]:
    """Return the user's MFA state from Cognito plus the pending enrollment, if any.

    A preference an earlier verify still owes is completed first (``context`` is who asks),
    so GetUser tells the truth.
    """
    # One query finds both the pending enrollment and any preference still owed.
    rows = list(
        Enrollment.objects.filter(
            Q(user=user, status=EnrollmentStatus.PENDING, expires_at__gt=clock.now())
            | Q(
                cognito_username=token.username,
                status=EnrollmentStatus.VERIFIED,
                preference_pending=True,
            )
        ).order_by("-created_at")
    )
    pending = next((row for row in rows if row.status == EnrollmentStatus.PENDING), None)
    owed = [row for row in rows if row.preference_pending]
    if owed:
        complete_owed(context or Context.build("api"), owed, stop_at_failure=True)
    state = get_client().get_user(access_token=token.raw)
    return status_payload(state, pending)


# --- starting ---------------------------------------------------------------------------------


@sensitive_variables("associated", "uri")
def start_enrollment(
    context: Context, *, user: Any, token: AccessToken, device_name: str = ""
) -> StartedEnrollment:
    """Associate a new software token for the token's user and keep a pending enrollment.

    Replacing an existing TOTP needs a recent sign-in (``COGNITO_MFA_REAUTH_MAX_AGE``).
    """
    client = get_client()
    check_failure_budget(token.username)
    # Step-up: a user protected by any MFA factor (TOTP, SMS, e-mail) must have signed in
    # recently to add or replace a TOTP, which then becomes what sign-in asks for. A recent
    # sign-in may start either way, so only an older one costs a look. A verified TOTP whose
    # "turn on" is still owed is not listed by Cognito yet, so our table is asked first; then
    # Cognito, which knows the factors set up elsewhere.
    if not is_recent_authentication(token) and (
        owes_totp_preference(token.username) or client.get_user(access_token=token.raw).mfa_methods
    ):
        raise exc.ReauthenticationRequired()
    for _ in range(KEY_ASKS):
        key_asked_at = clock.now()
        associated = client.associate_software_token(access_token=token.raw)
        uri = _otpauth_uri(context, associated.secret_code, token.username, user)
        try:
            enrollment = _create_pending(
                context,
                user=user,
                cognito_username=token.username,
                flow=EnrollmentFlow.ACCESS_TOKEN,
                credential=token.raw,
                credential_expires_at=token.expires_at,
                device_name=device_name,
                key_asked_at=key_asked_at,
            )
        except _KeysCrossed as crossed:
            # Another start of this user asked for a key while we did: ask again, once its row
            # is older than our question by our clock too.
            wait = (crossed.written_at - clock.now()).total_seconds()
            time.sleep(min(max(wait, 0), KEY_ASK_WAIT_MAX) + 0.001)
            continue
        return StartedEnrollment(
            enrollment=enrollment, secret_code=associated.secret_code, otpauth_uri=uri
        )
    raise exc.EnrollmentNotPending(
        gettext_lazy("Another start of this user is in progress; try again.")
    )


@sensitive_variables("session", "associated", "next_session", "challenge_token", "uri")
def start_challenge_enrollment(
    context: Context, *, cognito_username: str, session: str, device_name: str = ""
) -> StartedEnrollment:
    """Associate a software token during sign-in (``MFA_SETUP``), driven by the auth Session.

    The username is the caller's claim: nothing in the opaque Session says whose it is. So the
    start does not look the name up (a lookup would tell a caller holding any live Session of
    their own whether that user exists and has MFA, which the pool's
    PreventUserExistenceErrors hides), and every claim is answered alike, by the same one
    Cognito call. The claim is kept only inside the encrypted credential, next to the Session:
    the row, its audit rows and signals name nobody until Cognito's tokens prove the name at
    the verify. Until then it supersedes no enrollment, reads or spends no one's wrong-code
    budget and acts on no account by name; the QR label shows only the name the caller typed.
    """
    client = get_client()
    associated = client.associate_software_token(session=session)
    # Cognito hands back a new Session: that one continues the challenge.
    next_session = associated.session or session
    uri = _otpauth_uri(context, associated.secret_code, cognito_username, None)
    challenge_token = secrets.token_urlsafe(32)
    enrollment = _create_pending(
        context,
        user=None,
        cognito_username="",
        flow=EnrollmentFlow.CHALLENGE,
        credential=seal_challenge_claim(next_session, cognito_username),
        credential_expires_at=clock.now() + app_settings.CHALLENGE_SESSION_TTL,
        device_name=device_name,
        challenge_token_hash=hash_challenge_token(challenge_token),
    )
    return StartedEnrollment(
        enrollment=enrollment,
        secret_code=associated.secret_code,
        otpauth_uri=uri,
        challenge_token=challenge_token,
    )


@sensitive_variables("secret_code")
def _otpauth_uri(context: Context, secret_code: str, cognito_username: str, user: Any) -> str:
    """The start's otpauth URI, with the adapter's issuer and label. Built before the new row
    is written (and an older one cancelled): whatever can still fail here, a host's hook for
    one, then leaves the user's state as it was."""
    adapter = get_adapter()
    return build_otpauth_uri(
        secret=secret_code,
        issuer=adapter.get_totp_issuer(context.request),
        account=adapter.get_totp_label(cognito_username, user),
    )


class _VerifyInFlight(Exception):
    """An older pending enrollment is being verified right now: wait, then start again."""


class _KeysCrossed(Exception):
    """The pending enrollment to replace was written after our key was asked for."""

    def __init__(self, written_at: datetime) -> None:
        self.written_at = written_at


@sensitive_variables("credential")
def _create_pending(
    context: Context,
    *,
    user: Any,
    cognito_username: str,
    flow: str,
    credential: str,
    credential_expires_at: datetime,
    device_name: str,
    challenge_token_hash: str = "",
    key_asked_at: datetime | None = None,
) -> Enrollment:
    """Create the new pending enrollment; for a proven user (access-token flow) cancel the
    older pending one first, retrying a lost race and waiting out a verify in flight.
    ``key_asked_at``: when the key shown with this enrollment was asked of Cognito.

    A sign-in challenge supersedes nothing: the username it names is only a claim until
    Cognito hands out tokens, so it must not be able to cancel anyone's enrollment.
    """
    supersedes = flow == EnrollmentFlow.ACCESS_TOKEN
    deadline = time.monotonic() + verify_lease.duration().total_seconds()
    races = 0
    while True:
        timestamp = clock.now()
        try:
            with transaction.atomic():
                if supersedes:
                    # Serialise starts of one user on their row (never across a Cognito call).
                    lock_user_row(user)
                    _cancel_pending_for(
                        context,
                        user=user,
                        cognito_username=cognito_username,
                        timestamp=timestamp,
                        key_asked_at=key_asked_at,
                    )
                enrollment = Enrollment.objects.create(
                    user=user,
                    cognito_username=cognito_username,
                    flow=flow,
                    friendly_device_name=device_name,
                    created_at=timestamp,
                    expires_at=min(timestamp + app_settings.ENROLLMENT_TTL, credential_expires_at),
                    encrypted_credential=crypto.encrypt(credential),
                    credential_expires_at=credential_expires_at,
                    challenge_token_hash=challenge_token_hash,
                )
                events.record(
                    Kind.STARTED, context, enrollment=enrollment, signal=signals.enrollment_started
                )
                return enrollment
        except IntegrityError:
            # Another start of the same user committed first: cancel theirs, insert ours.
            races += 1
            if races == 5:
                raise
        except _VerifyInFlight:
            if time.monotonic() > deadline:
                raise exc.EnrollmentNotPending(
                    gettext_lazy("A verification of your pending enrollment is in progress.")
                ) from None
            time.sleep(0.05)


def _cancel_pending_for(
    context: Context,
    *,
    user: Any,
    cognito_username: str,
    timestamp: datetime,
    key_asked_at: datetime | None = None,
) -> None:
    """Cancel the older pending enrollment(s) of a proven user (access-token flow), inside the
    caller's transaction. Raise _VerifyInFlight if one of them holds a live verify lease: its
    code may be accepted by Cognito this very moment, so it must finish first. Raise
    _KeysCrossed if one was written after ``key_asked_at`` (see KEY_ASKS)."""
    for old in Enrollment.objects.lock_pending_to_replace(user, cognito_username):
        if old.verify_in_flight(timestamp):
            raise _VerifyInFlight()
        # A row stamped further ahead of our clock than KEY_ASK_WAIT_MAX tells of a clock that
        # is off (or a test's time travel), not of a key asked for meanwhile: replaced as is.
        # A sign-in challenge row only claims this username (anyone holding a Session of their
        # own may name it), so it must not be able to make the user's starts ask again.
        if (
            key_asked_at is not None
            and old.flow == EnrollmentFlow.ACCESS_TOKEN
            and old.created_at > key_asked_at
            and (old.created_at - clock.now()).total_seconds() <= KEY_ASK_WAIT_MAX
        ):
            raise _KeysCrossed(old.created_at)
        if old.user_id == user.pk:
            old.user = user  # the audit row reads it; saves a query
        if Enrollment.objects.end_pending(old.pk, EnrollmentStatus.CANCELLED, timestamp):
            ended(
                old, context, EnrollmentStatus.CANCELLED, timestamp, detail={"reason": "superseded"}
            )


# --- cancelling -------------------------------------------------------------------------------


def cancel_enrollment(enrollment: Enrollment, context: Context) -> None:
    """Cancel a pending enrollment; raise EnrollmentNotPending if it is not (or is busy)."""
    free = lease_free(clock.now())
    if not end_pending(enrollment, context, EnrollmentStatus.CANCELLED, only_if=free):
        raise exc.EnrollmentNotPending()
