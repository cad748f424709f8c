"""The use cases: start, verify, cancel, expire, set preference, read status.

Views, admin actions and commands call these; they talk to Cognito through
:mod:`cognito_mfa.cognito`, change state in short transactions (never holding a database lock
while Cognito is called) and send signals after commit.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.core.handlers.wsgi import WSGIRequest
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.dispatch import Signal
from django.http import HttpRequest, QueryDict
from django.utils import timezone
from django.utils.translation import gettext_lazy
from django.views.decorators.debug import sensitive_variables

from . import budget, crypto, signals
from . import exceptions as exc
from .adapter import get_adapter
from .cognito import MFAState, get_client
from .conf import app_settings
from .models import (
    AuditEvent,
    Enrollment,
    EnrollmentFlow,
    EnrollmentStatus,
    FailureCounter,
    lease_free,
    lock_user_row,
)

if TYPE_CHECKING:
    from .tokens import AccessToken

logger = logging.getLogger(__name__)

Kind = AuditEvent.Kind


def now() -> datetime:
    """The app's clock (one seam for tests)."""
    return timezone.now()


@dataclass(frozen=True)
class Context:
    """Who asks, through which door, from where."""

    source: str  # "api", "challenge", "admin" or "command"
    request: HttpRequest | None = None
    actor: Any = None  # the admin for admin acts, else None (the user acts)
    ip_address: str | None = None

    @classmethod
    def build(cls, source: str, request: HttpRequest | None = None, actor: Any = None) -> Context:
        return cls(
            source=source,
            request=without_credentials(request),
            actor=actor,
            ip_address=get_adapter().get_client_ip(request),
        )


# Request headers that carry a credential: the bearer token, the host's token header, cookies.
_CREDENTIAL_HEADERS = (
    "HTTP_AUTHORIZATION",
    "HTTP_X_COGNITO_ACCESS_TOKEN",
    "HTTP_COOKIE",
    "CSRF_COOKIE",
)


# What a clone computes from its own META and body (every other public attribute on a request
# was put there by middleware: the user, the session, a host's tenant) and DRF's mirror of
# ``request.auth`` (our AccessToken, whose ``.raw`` is the token).
_NOT_COPIED = frozenset({"META", "environ", "GET", "POST", "COOKIES", "FILES", "headers", "auth"})


def without_credentials(request: HttpRequest | None) -> HttpRequest | None:
    """Return a copy of ``request`` fit for signal receivers: no credential headers, no
    cookies, no body (bodies carry codes, Sessions and challenge tokens).

    A new request is built from the kept headers rather than the original copied and
    emptied, so nothing of the body or the credentials can be left in a cache of its own.
    """
    if request is None:
        return None
    meta = {key: value for key, value in request.META.items() if key not in _CREDENTIAL_HEADERS}
    clone: HttpRequest
    if isinstance(request, WSGIRequest):
        # Rebuilt from its environ, so scheme, host and query string read as before.
        clone = WSGIRequest({**meta, "wsgi.input": io.BytesIO(b""), "CONTENT_LENGTH": "0"})
    else:
        clone = HttpRequest()
        clone.META = meta
        clone.method, clone.path, clone.path_info = request.method, request.path, request.path_info
        clone.GET = QueryDict(request.GET.urlencode())
    for name, value in vars(request).items():
        if not name.startswith("_") and name not in _NOT_COPIED and name not in vars(clone):
            setattr(clone, name, value)
    clone.resolver_match = request.resolver_match
    return clone


# Result objects carry secrets and tokens to the caller once: their repr (error reports,
# debuggers, a stray log line) leaves them out.
@dataclass(frozen=True)
class StartedEnrollment:
    enrollment: Enrollment
    secret_code: str = field(repr=False)
    otpauth_uri: str = field(repr=False)
    challenge_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class VerifiedEnrollment:
    enrollment: Enrollment
    mfa_enabled: bool
    preferred: bool
    session: str | None = field(default=None, repr=False)
    authentication_result: dict[str, Any] | None = field(default=None, repr=False)


# --- small helpers --------------------------------------------------------------------------


def _send_on_commit(signal: Signal, **kwargs: Any) -> None:
    def send() -> None:
        for receiver, response in signal.send_robust(sender=Enrollment, **kwargs):
            if isinstance(response, Exception):
                logger.error(
                    "cognito_mfa signal receiver %r raised %s",
                    receiver,
                    type(response).__name__,
                )

    transaction.on_commit(send)


def _announce(signal: Signal, enrollment: Enrollment, context: Context) -> None:
    """Send a life-cycle signal (kwargs: enrollment, user, request, source) after commit."""
    _send_on_commit(
        signal,
        enrollment=enrollment,
        user=enrollment.user,
        request=context.request,
        source=context.source,
    )


def _announce_preference(context: Context, user: Any, *, enabled: bool, preferred: bool) -> None:
    """Send ``mfa_preference_changed`` after commit (``actor``: the admin, else the user)."""
    _send_on_commit(
        signals.mfa_preference_changed,
        user=user,
        request=context.request,
        source=context.source,
        actor=_actor(context, user),
        enabled=enabled,
        preferred=preferred,
    )


def _audit(
    kind: str,
    context: Context,
    *,
    enrollment: Enrollment | None = None,
    user: Any = None,
    cognito_username: str = "",
    outcome: str = "ok",
    detail: dict[str, Any] | None = None,
) -> None:
    _audit_event(
        kind,
        context,
        enrollment=enrollment,
        user=user,
        cognito_username=cognito_username,
        outcome=outcome,
        detail=detail,
    ).save(force_insert=True)


def _audit_event(
    kind: str,
    context: Context,
    *,
    enrollment: Enrollment | None = None,
    user: Any = None,
    cognito_username: str = "",
    outcome: str = "ok",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """The audit row of one event, not yet saved (:func:`_audit` saves it; a batch saves its
    rows in one INSERT)."""
    if enrollment is not None:
        user = user if user is not None else enrollment.user
        cognito_username = cognito_username or enrollment.cognito_username
    return AuditEvent(
        enrollment=enrollment,
        user=user,
        cognito_username=cognito_username,
        actor=_actor(context, user),
        kind=kind,
        source=context.source,
        outcome=outcome,
        ip_address=context.ip_address,
        detail=detail or {},
    )


def _actor(context: Context, user: Any) -> Any:
    return context.actor if context.actor is not None else user


# Django's error reports show frame locals (the DEBUG page, AdminEmailHandler's HTML, trackers
# reading them): the functions below name the locals that hold a token, a Session, the secret,
# the user's code or the decrypted credential, so those reports show stars instead.
@sensitive_variables("token")
def hash_challenge_token(token: str) -> str:
    """Return the stored form of a challenge token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@sensitive_variables("token")
def challenge_token_matches(enrollment: Enrollment, token: str) -> bool:
    """Compare a presented challenge token with the stored hash in constant time."""
    expected = enrollment.challenge_token_hash
    return bool(expected) and hmac.compare_digest(expected, hash_challenge_token(token))


def is_recent_authentication(token: AccessToken) -> bool:
    """Tell whether the token's sign-in (``auth_time``) is younger than the step-up limit."""
    # No auth_time means the age is unknown: treat it as too old (fail closed).
    if token.auth_time is None:
        return False
    return now() - token.auth_time <= app_settings.REAUTH_MAX_AGE


def require_recent_authentication(token: AccessToken) -> None:
    """Raise ReauthenticationRequired unless the token's ``auth_time`` is recent enough."""
    if not is_recent_authentication(token):
        raise exc.ReauthenticationRequired()


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
            Q(user=user, status=EnrollmentStatus.PENDING, expires_at__gt=now())
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
        _complete_owed(context or Context.build("api"), owed)
    state = get_client().get_user(access_token=token.raw)
    return _status_payload(state, pending)


def _status_payload(state: MFAState, pending: Enrollment | None) -> dict[str, Any]:
    return {
        "software_token_mfa_enabled": state.software_token_mfa_enabled,
        "preferred_mfa": state.preferred_mfa,
        "pending_enrollment": (
            {"id": str(pending.id), "expires_at": pending.expires_at} if pending else None
        ),
    }


# --- starting ---------------------------------------------------------------------------------


class _VerifyInFlight(Exception):
    """An older pending enrollment is being verified right now: wait, then start again."""


class _KeysCrossed(Exception):
    """The pending enrollment to replace was written after our key was asked for."""

    def __init__(self, written_at: datetime) -> None:
        self.written_at = written_at


# Each AssociateSoftwareToken replaces the user's key in Cognito, and two starts of one user
# whose calls overlap reach Cognito in an order the app cannot see. A start therefore replaces
# only a pending row written before it asked for its key; otherwise it asks again, so that the
# key it shows is the one Cognito holds. Three asks at most, then 409 (try again). Rows written
# on another host compare by that host's clock: a clock behind ours by more than the time
# between the two asks would hide the crossing, and so would one more than KEY_ASK_WAIT_MAX
# ahead (such a row is replaced as is); NTP-synchronised hosts keep to a few ms.
KEY_ASKS = 3
# How long an admin refresh's worker waits for the call budget before giving up on a user.
REFRESH_BUDGET_PATIENCE_S = 30.0
KEY_ASK_WAIT_MAX = 1.0  # seconds; a row stamped further ahead comes from a clock that is off


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
            and (old.created_at - now()).total_seconds() <= KEY_ASK_WAIT_MAX
        ):
            raise _KeysCrossed(old.created_at)
        if old.user_id == user.pk:
            old.user = user  # the audit row reads it; saves a query
        if Enrollment.objects.end_pending(old.pk, EnrollmentStatus.CANCELLED, timestamp):
            _ended(old, EnrollmentStatus.CANCELLED, timestamp)
            _audit(Kind.CANCELLED, context, enrollment=old, detail={"reason": "superseded"})
            _announce(signals.enrollment_cancelled, old, context)


def _ended(enrollment: Enrollment, status: str, timestamp: datetime) -> None:
    """Bring a row in hand up to date with the terminal state just written to its table."""
    enrollment.status = status
    enrollment.encrypted_credential = None
    enrollment.verify_lease_until = None
    enrollment.finished_at = timestamp


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
    deadline = time.monotonic() + _lease_duration().total_seconds()
    races = 0
    while True:
        timestamp = now()
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
                _audit(Kind.STARTED, context, enrollment=enrollment)
                _announce(signals.enrollment_started, enrollment, context)
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


@sensitive_variables("secret_code")
def _otpauth_uri(context: Context, secret_code: str, cognito_username: str, user: Any) -> str:
    """The start's otpauth URI, with the adapter's issuer and label. Built before the new row
    is written (and an older one cancelled): whatever can still fail here, a host's hook for
    one, then leaves the user's state as it was."""
    from .otpauth import build_otpauth_uri

    adapter = get_adapter()
    return build_otpauth_uri(
        secret=secret_code,
        issuer=adapter.get_totp_issuer(context.request),
        account=adapter.get_totp_label(cognito_username, user),
    )


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
        _owes_totp_preference(token.username) or client.get_user(access_token=token.raw).mfa_methods
    ):
        raise exc.ReauthenticationRequired()
    for _ in range(KEY_ASKS):
        key_asked_at = now()
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
            wait = (crossed.written_at - now()).total_seconds()
            time.sleep(min(max(wait, 0), KEY_ASK_WAIT_MAX) + 0.001)
            continue
        return StartedEnrollment(
            enrollment=enrollment, secret_code=associated.secret_code, otpauth_uri=uri
        )
    raise exc.EnrollmentNotPending(
        gettext_lazy("Another start of this user is in progress; try again.")
    )


def _owes_totp_preference(cognito_username: str) -> bool:
    """Tell whether a verified TOTP of this user still waits for ``SetUserMFAPreference``."""
    return Enrollment.objects.filter(
        cognito_username=cognito_username,
        status=EnrollmentStatus.VERIFIED,
        preference_pending=True,
    ).exists()


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
        credential_expires_at=now() + app_settings.CHALLENGE_SESSION_TTL,
        device_name=device_name,
        challenge_token_hash=hash_challenge_token(challenge_token),
    )
    return StartedEnrollment(
        enrollment=enrollment,
        secret_code=associated.secret_code,
        otpauth_uri=uri,
        challenge_token=challenge_token,
    )


@dataclass(frozen=True)
class ChallengeClaim:
    """What a sign-in challenge row keeps encrypted: the Session and the claimed username."""

    session: str = field(repr=False)
    cognito_username: str = field(repr=False)


@sensitive_variables("session", "cognito_username")
def seal_challenge_claim(session: str, cognito_username: str) -> str:
    """The plaintext a challenge row encrypts: a small JSON document (a Session, which is
    base64 text, never starts with ``{``, so rows written before it read as a bare Session)."""
    return json.dumps({"session": session, "username": cognito_username}, separators=(",", ":"))


@sensitive_variables("plaintext", "document")
def open_challenge_claim(enrollment: Enrollment, plaintext: str) -> ChallengeClaim:
    """Read the decrypted credential of a challenge row: the Session and the claimed name.

    A row written before claims were sealed holds the bare Session, and its claim in
    ``cognito_username``.
    """
    if plaintext.startswith("{"):
        try:
            document = json.loads(plaintext)
        except ValueError:
            document = None
        if isinstance(document, dict):
            session, username = document.get("session"), document.get("username")
            if isinstance(session, str) and isinstance(username, str):
                return ChallengeClaim(session=session, cognito_username=username)
    return ChallengeClaim(session=plaintext, cognito_username=enrollment.cognito_username)


@sensitive_variables("challenge_token")
def get_challenge_enrollment(enrollment_id: Any, challenge_token: str) -> Enrollment:
    """Return the challenge enrollment the token opens; NotFound for any mismatch."""
    enrollment = Enrollment.objects.filter(pk=enrollment_id, flow=EnrollmentFlow.CHALLENGE).unique()
    if enrollment is None or not challenge_token_matches(enrollment, challenge_token):
        # Same answer as an unknown id: the id alone tells nothing.
        raise exc.NotFound()
    return enrollment


# --- abuse limits -----------------------------------------------------------------------------


def check_failure_budget(cognito_username: str) -> bool:
    """Raise Throttled while the user is backing off after many consecutive wrong codes.

    Return whether the user has wrong codes on record (a success then has to reset them).
    """
    record = FailureCounter.objects.record(cognito_username)
    if record is None:
        return False
    consecutive_failures, blocked_until = record
    if consecutive_failures >= app_settings.FAILURE_HARD_LIMIT:
        raise exc.Throttled(
            gettext_lazy("Too many wrong codes. Ask the site's help desk to reset your MFA."),
            retry_after=3600,
            reset_required=True,
        )
    if blocked_until is not None and blocked_until > now():
        wait = (blocked_until - now()).total_seconds()
        raise exc.Throttled(retry_after=int(wait) + 1)
    return True


def _count_failure(cognito_username: str) -> None:
    FailureCounter.objects.count_failure(
        cognito_username,
        budget=app_settings.FAILURE_BUDGET,
        backoff_base=app_settings.FAILURE_BACKOFF_BASE,
        at=now(),
    )


def reset_failure_budget(cognito_username: str) -> None:
    """Forget a user's consecutive wrong codes (after success or an admin reset)."""
    FailureCounter.objects.forget(cognito_username)


# --- verifying --------------------------------------------------------------------------------


def _lease_duration() -> timedelta:
    # Long enough for one Cognito call with its retries; a crashed worker's lease runs out.
    per_call = app_settings.CONNECT_TIMEOUT + app_settings.READ_TIMEOUT
    return timedelta(seconds=per_call * max(1, app_settings.MAX_RETRY_ATTEMPTS) + 2)


def _claim(enrollment: Enrollment, context: Context) -> datetime:
    """Take the verify lease: the only request allowed to call Cognito for this enrollment.

    Concurrent verifies wait their turn (so wrong codes are counted one by one and a right
    code is spent once) and get the outcome of the state left behind.
    """
    deadline = time.monotonic() + _lease_duration().total_seconds()
    while True:
        timestamp = now()
        lease = timestamp + _lease_duration()
        claimed = Enrollment.objects.claim_verify_lease(
            enrollment.pk, lease=lease, at=timestamp, max_attempts=app_settings.MAX_ATTEMPTS
        )
        if claimed:
            return lease
        enrollment.refresh_from_db()
        _raise_for_state(enrollment, context, timestamp)
        if time.monotonic() > deadline:
            raise exc.EnrollmentNotPending(
                gettext_lazy("A verification of this enrollment is in progress.")
            )
        time.sleep(0.02)


def _raise_for_state(enrollment: Enrollment, context: Context, timestamp: datetime) -> None:
    """Raise the error that matches a row that cannot be verified now (if any)."""
    if enrollment.status == EnrollmentStatus.LOCKED:
        raise exc.EnrollmentLocked()
    if enrollment.status == EnrollmentStatus.EXPIRED:
        raise exc.EnrollmentExpired()
    if enrollment.status != EnrollmentStatus.PENDING:
        raise exc.EnrollmentNotPending()
    if enrollment.expires_at <= timestamp:
        expire_enrollment(enrollment, context)
        raise exc.EnrollmentExpired()
    if enrollment.attempts >= app_settings.MAX_ATTEMPTS:
        _lock(enrollment, context, enrollment.verify_lease_until)
        raise exc.EnrollmentLocked()


def _release(enrollment: Enrollment, lease: datetime) -> None:
    Enrollment.objects.release_verify_lease(enrollment.pk, lease)


def _end_pending(
    enrollment: Enrollment,
    context: Context,
    *,
    status: str,
    kind: str,
    signal: Signal,
    only_if: Q | None = None,
    outcome: str = "ok",
    detail: dict[str, Any] | None = None,
) -> bool:
    """Move a pending row to the terminal ``status`` by compare-and-set, audit it and announce
    it after commit. Return False (and change nothing) if the row was no longer pending, or
    ``only_if`` did not hold: another request got there first."""
    timestamp = now()
    with transaction.atomic():
        changed = Enrollment.objects.end_pending(enrollment.pk, status, timestamp, only_if=only_if)
        if changed:
            _ended(enrollment, status, timestamp)
            _audit(kind, context, enrollment=enrollment, outcome=outcome, detail=detail)
            _announce(signal, enrollment, context)
    return changed


def _lock(enrollment: Enrollment, context: Context, lease: datetime | None) -> bool:
    return _end_pending(
        enrollment,
        context,
        status=EnrollmentStatus.LOCKED,
        kind=Kind.LOCKED,
        signal=signals.enrollment_locked,
        only_if=Q(verify_lease_until=lease),
        outcome="enrollment_locked",
    )


def expire_enrollment(
    enrollment: Enrollment, context: Context, *, lease: datetime | None = None
) -> bool:
    """Expire a pending enrollment (once: return False if another process did it first).

    A row whose verify is in flight is left to that verify, unless the caller holds ``lease``.
    """
    free = lease_free(now())
    return _end_pending(
        enrollment,
        context,
        status=EnrollmentStatus.EXPIRED,
        kind=Kind.EXPIRED,
        signal=signals.enrollment_expired,
        only_if=free if lease is None else free | Q(verify_lease_until=lease),
        outcome="enrollment_expired",
    )


def _record_wrong_code(enrollment: Enrollment, context: Context, lease: datetime) -> int:
    """Count a rejected code; lock at the cap. Return the attempts remaining.

    Raise EnrollmentNotPending if the row ended (or our lease ran out) while Cognito answered:
    the wrong code still counts against the user, but the row is no longer ours to change.
    A sign-in challenge's wrong code counts against its enrollment only: the username it names
    is a claim, and a stranger's wrong codes must not back the named user off.
    """
    cap = app_settings.MAX_ATTEMPTS
    timestamp = now()
    with transaction.atomic():
        row, ours = Enrollment.objects.record_wrong_code(
            enrollment.pk, lease=lease, at=timestamp, max_attempts=cap
        )
        if row.flow != EnrollmentFlow.CHALLENGE:
            _count_failure(row.cognito_username)
        if ours:
            locked = row.status == EnrollmentStatus.LOCKED
            remaining = max(cap - row.attempts, 0)
            _audit(
                Kind.VERIFICATION_FAILED,
                context,
                enrollment=row,
                outcome="invalid_code",
                detail={"attempts_remaining": remaining},
            )
            _send_on_commit(
                signals.verification_failed,
                enrollment=row,
                user=row.user,
                request=context.request,
                source=context.source,
                actor=_actor(context, row.user),
                code="invalid_code",
                attempts_remaining=remaining,
            )
            if locked:
                _audit(Kind.LOCKED, context, enrollment=row, outcome="enrollment_locked")
                _announce(signals.enrollment_locked, row, context)
    if not ours:
        raise exc.EnrollmentNotPending()
    enrollment.attempts, enrollment.status = row.attempts, row.status
    enrollment.encrypted_credential = row.encrypted_credential
    return remaining


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
    lease = _claim(enrollment, context)
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
    lease = _claim(enrollment, context)
    return _verify_leased(context, enrollment, lease, user_code, device_name)


@sensitive_variables(
    "credential",
    "user_code",
    "result",
    "session",
    "step",
    "authentication_result",
    "fresh_token",
    "claim",
)
def _verify_leased(
    context: Context,
    enrollment: Enrollment,
    lease: datetime,
    user_code: str,
    device_name: str | None,
) -> VerifiedEnrollment:
    """The verify itself, once this request holds the enrollment's verify ``lease``."""
    # The budget is read under the lease: wrong codes are only counted by the lease holder, so
    # the read is exact and queued requests cannot overshoot the hard limit. A success resets
    # the counter; the write is skipped when there is none. Admin acts neither check nor skip.
    is_challenge = enrollment.flow == EnrollmentFlow.CHALLENGE
    failures_on_record = True
    if context.source != "admin" and not is_challenge:
        try:
            failures_on_record = check_failure_budget(enrollment.cognito_username)
        except exc.Throttled:
            _release(enrollment, lease)
            raise
    try:
        credential = crypto.decrypt(enrollment.encrypted_credential or b"")
    except crypto.CredentialUndecryptable:
        _release(enrollment, lease)
        logger.error("cognito_mfa: enrollment credential cannot be decrypted with current keys")
        raise exc.CognitoConfigurationError() from None
    # A challenge row's credential holds its Session and the claimed name (never a column).
    claim = open_challenge_claim(enrollment, credential) if is_challenge else None
    device_name = device_name or enrollment.friendly_device_name
    client = get_client()
    try:
        result = client.verify_software_token(
            access_token=None if claim is not None else credential,
            session=claim.session if claim is not None else None,
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
        # Cognito unreachable, throttling or misconfigured: not the user's fault, nothing changes.
        _release(enrollment, lease)
        raise

    session: str | None = None
    authentication_result: dict[str, Any] | None = None
    preferred = app_settings.SET_PREFERRED
    preference_owed = False
    preference_set = False
    proven_user: Any = None
    proven_username: str | None = None
    completion_outcome: str | None = None
    if claim is not None:
        session = result.session
        if app_settings.CHALLENGE_COMPLETE_AUTH and session:
            try:
                step = client.respond_to_mfa_setup(
                    username=claim.cognito_username,
                    session=session,
                    client_id=_challenge_client_id(),
                )
                authentication_result = step.authentication_result
                session = step.session if step.authentication_result is None else None
                completion_outcome = "ok" if authentication_result is not None else "challenge"
            except exc.CognitoMFAError as error:
                # The token is verified; the SPA can still answer the challenge itself.
                logger.warning("cognito_mfa: RespondToAuthChallenge failed with %s", error.code)
                completion_outcome = error.code
        fresh_token = (authentication_result or {}).get("AccessToken")
        if fresh_token is not None and not _token_names(fresh_token, claim.cognito_username):
            # The Session belonged to someone else than the username the caller claimed.
            logger.warning("cognito_mfa: MFA_SETUP tokens name another user than claimed")
            expire_enrollment(enrollment, context, lease=lease)
            raise exc.NotFound()
        if fresh_token is not None:
            # Proven: the row, its signals and audit rows now name the Cognito user and the
            # site's user (if any), and the user's consecutive wrong codes are forgotten as after
            # any success.
            proven_username = claim.cognito_username
            proven_user = get_adapter().get_user_for_cognito_username(proven_username)
            enrollment.user, enrollment.cognito_username = proven_user, proven_username
            preference_owed = not _turn_on_totp(client, proven_username, fresh_token, preferred)
            preference_set = not preference_owed
        else:
            # Without tokens the username is only the caller's claim: act on nobody's account
            # by name and name nobody. The SPA answers the challenge and turns TOTP on with its
            # own new token (POST preference/); the claimed user's failure budget is left alone.
            failures_on_record = False
    else:
        preference_owed = not _turn_on_totp(
            client, enrollment.cognito_username, credential, preferred
        )
        preference_set = not preference_owed

    enrollment = _mark_verified(
        enrollment,
        context,
        lease,
        device_name or "",
        preference_owed=preference_owed,
        preference_set=preference_set,
        reset_failures=failures_on_record,
        proven_user=proven_user,
        proven_username=proven_username,
        unproven_claim=is_challenge and proven_username is None,
    )
    if completion_outcome is not None:
        # Whether the server-side RespondToAuthChallenge handed out tokens (never the tokens).
        _audit(Kind.CHALLENGE_COMPLETED, context, enrollment=enrollment, outcome=completion_outcome)
    return VerifiedEnrollment(
        enrollment=enrollment,
        mfa_enabled=not preference_owed,
        preferred=preferred and not preference_owed,
        session=session,
        authentication_result=authentication_result,
    )


@sensitive_variables("access_token", "claims")
def _token_names(access_token: str, cognito_username: str) -> bool:
    """Tell whether a token Cognito just handed us belongs to ``cognito_username``.

    The signature is not checked: the token came straight from Cognito over TLS, and only
    its ``username``/``sub`` claim is compared, never trusted for authorisation.
    """
    import jwt

    try:
        claims = jwt.decode(access_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return False
    return cognito_username in (claims.get("username"), claims.get("sub"))


def _challenge_client_id() -> str:
    ids = app_settings.APP_CLIENT_IDS
    return ids[0] if ids else ""


@sensitive_variables("access_token")
def _turn_on_totp(
    client: Any, cognito_username: str, access_token: str | None, preferred: bool
) -> bool:
    """Enable TOTP in Cognito; return False (preference owed) if Cognito could not be told."""
    try:
        if access_token is not None:
            client.set_user_mfa_preference(
                access_token=access_token, enabled=True, preferred=preferred
            )
        else:
            client.admin_set_user_mfa_preference(
                username=cognito_username, enabled=True, preferred=preferred
            )
    except exc.CognitoMFAError as error:
        logger.warning("cognito_mfa: enabling TOTP failed with %s; retry owed", error.code)
        return False
    return True


def _mark_verified(
    enrollment: Enrollment,
    context: Context,
    lease: datetime,
    device_name: str,
    *,
    preference_owed: bool,
    preference_set: bool,
    reset_failures: bool = True,
    proven_user: Any = None,
    proven_username: str | None = None,
    unproven_claim: bool = False,
) -> Enrollment:
    """Record the verify Cognito accepted. ``preference_set``: TOTP was turned on just now (and
    is announced); ``proven_user`` and ``proven_username``: the site user and the Cognito
    username a sign-in challenge's tokens proved, written to the row with the verify."""
    timestamp = now()
    verified_by: Any = context.actor if context.actor is not None else enrollment.user
    with transaction.atomic():
        changed = Enrollment.objects.mark_verified(
            enrollment.pk,
            lease=lease,
            at=timestamp,
            verified_by=verified_by,
            device_name=device_name,
            preference_pending=preference_owed,
            user=proven_user,
            cognito_username=proven_username,
        )
        if not changed:
            # Our lease ran out while Cognito answered and the row ended meanwhile. Cognito has
            # the device regardless: leave a trace for the operator, then report the conflict.
            logger.warning("cognito_mfa: verified by Cognito after the enrollment had ended")
            _audit(
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
            enrollment.preference_pending = preference_owed
            if reset_failures:
                reset_failure_budget(enrollment.cognito_username)
            _audit(
                Kind.VERIFIED,
                context,
                enrollment=enrollment,
                detail={
                    **({"preference_pending": True} if preference_owed else {}),
                    # The device belongs to the Session's user; the username is only claimed.
                    **({"claim": "unproven"} if unproven_claim else {}),
                },
            )
            _send_on_commit(
                signals.software_token_verified,
                enrollment=enrollment,
                user=enrollment.user,
                request=context.request,
                source=context.source,
                actor=_actor(context, enrollment.user),
                friendly_device_name=device_name,
            )
            if preference_set:
                _announce_preference(
                    context, enrollment.user, enabled=True, preferred=app_settings.SET_PREFERRED
                )
    if not changed:
        raise exc.EnrollmentNotPending()
    return enrollment


def complete_owed_preference(enrollment: Enrollment, context: Context) -> bool:
    """Turn TOTP on for a verified enrollment whose ``SetUserMFAPreference`` failed.

    Uses ``AdminSetUserMFAPreference`` (the user's token is gone). Exactly once: return
    False if nothing was owed or another process completed it first.
    """
    if not enrollment.preference_pending:
        return False
    preferred = app_settings.SET_PREFERRED
    get_client().admin_set_user_mfa_preference(
        username=enrollment.cognito_username, enabled=True, preferred=preferred
    )
    with transaction.atomic():
        changed = Enrollment.objects.settle_owed_preference(enrollment.pk)
        if changed:
            enrollment.preference_pending = False
            _audit(
                Kind.PREFERENCE_CHANGED,
                context,
                enrollment=enrollment,
                detail={"enabled": True, "preferred": preferred},
            )
            _announce_preference(context, enrollment.user, enabled=True, preferred=preferred)
    return changed


def forgive_owed_preferences(cognito_username: str) -> None:
    """Drop a still-owed "turn TOTP on" of this user: a later explicit choice (the user's
    preference, an admin reset) wins, and a retry must not undo it. Done before calling
    Cognito, so a completion racing with the choice finds nothing owed."""
    Enrollment.objects.forgive_owed_preferences(cognito_username)


def _complete_owed(context: Context, owed: list[Enrollment]) -> int:
    """Complete preferences still owed (found by the caller); return how many were done.

    If Cognito is still unavailable the debt stays for a later request, the cleanup command
    or an admin refresh.
    """
    done = 0
    for enrollment in owed:
        try:
            done += complete_owed_preference(enrollment, context)
        except exc.CognitoMFAError as error:
            logger.warning("cognito_mfa: owed MFA preference still failing with %s", error.code)
            break
    return done


# --- cancelling, preference -------------------------------------------------------------------


def cancel_enrollment(enrollment: Enrollment, context: Context) -> None:
    """Cancel a pending enrollment; raise EnrollmentNotPending if it is not (or is busy)."""
    cancelled = _end_pending(
        enrollment,
        context,
        status=EnrollmentStatus.CANCELLED,
        kind=Kind.CANCELLED,
        signal=signals.enrollment_cancelled,
        only_if=lease_free(now()),
    )
    if not cancelled:
        raise exc.EnrollmentNotPending()


def set_preference(
    context: Context, *, user: Any, token: AccessToken, enabled: bool, preferred: bool
) -> dict[str, Any]:
    """Turn the user's TOTP MFA on/off and set whether it is preferred; return the status.

    Turning it off needs a recent sign-in.
    """
    if not enabled:
        require_recent_authentication(token)
    forgive_owed_preferences(token.username)
    client = get_client()
    client.set_user_mfa_preference(
        access_token=token.raw, enabled=enabled, preferred=preferred and enabled
    )
    with transaction.atomic():
        _audit(
            Kind.PREFERENCE_CHANGED,
            context,
            user=user,
            cognito_username=token.username,
            detail={"enabled": enabled, "preferred": preferred and enabled},
        )
        _announce_preference(context, user, enabled=enabled, preferred=preferred and enabled)
    state = client.get_user(access_token=token.raw)
    pending = Enrollment.objects.pending().filter(user=user, expires_at__gt=now()).first()
    return _status_payload(state, pending)


# --- admin and operations ---------------------------------------------------------------------


@dataclass(frozen=True)
class ResetResult:
    cognito_username: str
    token_deleted: bool  # False where botocore or the endpoint has no AdminDeleteSoftwareToken
    # The error code when AdminDeleteSoftwareToken failed after TOTP had been turned off.
    token_error: str | None = None


def reset_totp(context: Context, cognito_username: str, user: Any) -> ResetResult:
    """Turn a user's TOTP MFA off in Cognito and remove the software token where possible.

    Uses the IAM-authorised ``AdminSetUserMFAPreference`` and ``AdminDeleteSoftwareToken``;
    the user's consecutive wrong codes are forgotten so they can enroll again at once. Every
    pending enrollment of that Cognito user ends first (cancelled, audited, announced): one an
    intruder started before the reset must not be verifiable after it.
    """
    cancel_pending_of_cognito_user(context, cognito_username, reason="mfa_reset")
    forgive_owed_preferences(cognito_username)
    client = get_client()
    client.admin_set_user_mfa_preference(username=cognito_username, enabled=False, preferred=False)
    token_error: str | None = None
    try:
        token_deleted = client.admin_delete_software_token(username=cognito_username)
    except exc.CognitoMFAError as error:
        # TOTP is already off in Cognito: that change is audited and announced all the same,
        # and the caller learns that the token is still registered (a second reset removes it).
        logger.warning("cognito_mfa: removing the software token failed with %s", error.code)
        token_deleted, token_error = False, error.code
    with transaction.atomic():
        reset_failure_budget(cognito_username)
        _audit(
            Kind.MFA_RESET,
            context,
            user=user,
            cognito_username=cognito_username,
            outcome=token_error or "ok",
            detail={"token_deleted": token_deleted},
        )
        _announce_preference(context, user, enabled=False, preferred=False)
    return ResetResult(
        cognito_username=cognito_username, token_deleted=token_deleted, token_error=token_error
    )


def cancel_pending_of_cognito_user(context: Context, cognito_username: str, *, reason: str) -> int:
    """Cancel every pending enrollment naming ``cognito_username`` (either flow), a verify in
    flight included: its result is then refused as late. Return how many this call ended."""
    pending = Enrollment.objects.pending().filter(cognito_username=cognito_username)
    return sum(
        _end_pending(
            enrollment,
            context,
            status=EnrollmentStatus.CANCELLED,
            kind=Kind.CANCELLED,
            signal=signals.enrollment_cancelled,
            detail={"reason": reason},
        )
        for enrollment in pending.select_related("user")
    )


def refresh_mfa_states(context: Context, usernames: Any) -> dict[str, MFAState | str]:
    """Read the MFA state of many Cognito users (``AdminGetUser``); value: state or error code.

    Owed preferences of these users are completed first, so the states read are current.
    At most ``COGNITO_MFA_ADMIN_REFRESH_CONCURRENCY`` calls are in flight at once: enough to
    read hundreds of users in seconds, few enough to stay inside the account's request quota
    (the client's standard retry mode absorbs an occasional ``TooManyRequestsException``);
    each worker waits for the site's call budget rather than failing.
    """
    from concurrent.futures import ThreadPoolExecutor

    names = list(dict.fromkeys(str(name) for name in usernames if name))
    if not names:
        return {}
    owed = (
        Enrollment.objects.owed_preferences()
        .filter(cognito_username__in=names)
        .select_related("user")
    )
    for enrollment in owed:
        try:
            complete_owed_preference(enrollment, context)
        except exc.CognitoMFAError as error:
            logger.warning("cognito_mfa: completing an owed preference failed with %s", error.code)

    client = get_client()

    def read(name: str) -> MFAState | str:
        # Worker threads only talk to Cognito; the database is used from this thread alone.
        # They wait for the call budget instead of failing: the refresh is not in a hurry.
        try:
            with budget.waiting(REFRESH_BUDGET_PATIENCE_S):
                return client.admin_get_user(username=name)
        except exc.CognitoMFAError as error:
            return error.code

    workers = max(1, min(app_settings.ADMIN_REFRESH_CONCURRENCY, len(names)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cognito-mfa-refresh") as pool:
        results = dict(zip(names, pool.map(read, names), strict=True))

    users = dict(
        Enrollment.objects.filter(cognito_username__in=names, user__isnull=False)
        # Oldest first, so the dict keeps each name's newest user.
        .order_by("created_at")
        .values_list("cognito_username", "user_id")
    )
    AuditEvent.objects.bulk_create(
        [
            AuditEvent(
                user_id=users.get(name),
                cognito_username=name,
                actor=context.actor,
                kind=Kind.STATE_REFRESHED,
                source=context.source,
                outcome="ok" if isinstance(state, MFAState) else state,
                ip_address=context.ip_address,
                detail=(
                    {
                        "software_token_mfa_enabled": state.software_token_mfa_enabled,
                        "preferred_mfa": state.preferred_mfa,
                    }
                    if isinstance(state, MFAState)
                    else {}
                ),
                created_at=now(),
            )
            for name, state in results.items()
        ]
    )
    return results


@dataclass(frozen=True)
class CleanupReport:
    expired: int
    deleted_enrollments: int
    deleted_events: int
    preferences_completed: int
    preferences_failed: int


class _BatchCrossed(Exception):
    """Another process changed a row of the batch between its read and its update."""


def _after(rows: Any, field: str, key: tuple[Any, Any]) -> Any:
    """The rows past ``key`` = (``field``, pk) in (``field``, pk) order: the next keyset page.

    The range on ``field`` alone lets its index start there; a page never rereads the rows
    (or the index entries of rows deleted meanwhile) behind it.
    """
    value, pk = key
    return rows.filter(**{f"{field}__gte": value}).filter(
        Q(**{f"{field}__gt": value}) | Q(**{field: value, "pk__gt": pk})
    )


def _keyset_pages(rows: Any, field: str, batch_size: int) -> Iterator[list[Any]]:
    """Yield the primary keys of ``rows`` in (``field``, pk) order, ``batch_size`` at a time;
    each page is one short indexed read, however many rows lie behind or ahead of it."""
    key: tuple[Any, Any] | None = None
    while True:
        page = rows if key is None else _after(rows, field, key)
        keys = list(page.order_by(field, "pk").values_list(field, "pk")[:batch_size])
        if not keys:
            return
        key = keys[-1]
        yield [pk for _, pk in keys]


def _expire_batch(batch: list[Enrollment], context: Context, timestamp: datetime) -> None:
    """Expire ``batch`` (rows locked by the caller) in one UPDATE; audit and announce each.

    Raise _BatchCrossed, so the caller's transaction rolls back, unless every row changed.
    """
    changed = Enrollment.objects.filter(pk__in=[row.pk for row in batch]).expire(timestamp)
    if changed != len(batch):
        raise _BatchCrossed
    events = []
    for enrollment in batch:
        _ended(enrollment, EnrollmentStatus.EXPIRED, timestamp)
        events.append(
            _audit_event(Kind.EXPIRED, context, enrollment=enrollment, outcome="enrollment_expired")
        )
        _announce(signals.enrollment_expired, enrollment, context)
    AuditEvent.objects.bulk_create(events)


def expire_stale_enrollments(context: Context, *, batch_size: int = 500) -> int:
    """Expire every pending enrollment past ``expires_at``; return how many this call expired.

    Batch by batch in (expires_at, pk) order, each batch one short transaction: its rows are
    locked with SKIP LOCKED (a row a start or verify holds is left for the next run, never
    waited for), expired in one UPDATE, audited in one INSERT, announced after commit. Safe on
    several hosts at once: a row is expired (and signalled) exactly once, by the host whose
    UPDATE changed it. Where rows cannot be locked (SQLite), a batch another process changed
    meanwhile is rolled back and expired row by row with compare-and-set.
    """
    expired = 0
    key: tuple[Any, Any] | None = None
    while True:
        timestamp = now()
        stale = Enrollment.objects.expirable(timestamp)
        if key is not None:
            stale = _after(stale, "expires_at", key)
        try:
            with transaction.atomic():
                batch = list(
                    stale.select_related("user")
                    .select_for_update(skip_locked=True, of=("self",))
                    .order_by("expires_at", "pk")[:batch_size]
                )
                if not batch:
                    return expired
                key = (batch[-1].expires_at, batch[-1].pk)
                _expire_batch(batch, context, timestamp)
            expired += len(batch)
        except _BatchCrossed:
            for enrollment in batch:
                if expire_enrollment(enrollment, context):
                    expired += 1


def purge_finished(
    older_than: timedelta | None = None, *, batch_size: int = 500
) -> tuple[int, int]:
    """Delete finished enrollments and audit events older than the retention period.

    Return ``(enrollments, audit events)`` deleted. Pending rows are never deleted here.
    Both tables are walked by keyset over ``created_at`` (indexed), ``batch_size`` rows at a
    time, each batch its own short transaction: the cost follows the rows deleted, not the
    table, and no batch holds many locks or much memory. Rows another host deleted meanwhile
    count there.
    """
    cutoff = now() - (older_than if older_than is not None else app_settings.RETENTION)
    events = 0
    old_events = AuditEvent.objects.filter(created_at__lt=cutoff)
    for batch in _keyset_pages(old_events, "created_at", batch_size):
        deleted, _ = AuditEvent.objects.filter(pk__in=batch).delete()
        events += deleted
    # ``delete()`` of enrollments loads each batch's rows (their events' SET_NULL needs the
    # collector), so a batch is the most it holds in memory.
    finished = Enrollment.objects.purgeable(cutoff)
    enrollments = 0
    for batch in _keyset_pages(finished, "created_at", batch_size):
        _, per_model = finished.filter(pk__in=batch).delete()
        enrollments += per_model.get(Enrollment._meta.label, 0)
    return enrollments, events


def complete_owed_preferences(context: Context) -> tuple[int, int]:
    """Complete every owed ``SetUserMFAPreference``; return ``(completed, failed)``."""
    completed = failed = 0
    owed = Enrollment.objects.owed_preferences().select_related("user")
    for enrollment in owed.iterator():
        try:
            if complete_owed_preference(enrollment, context):
                completed += 1
        except exc.CognitoMFAError as error:
            failed += 1
            logger.warning("cognito_mfa: completing an owed preference failed with %s", error.code)
    return completed, failed


def cleanup(context: Context) -> CleanupReport:
    """Expire stale enrollments, complete owed preferences, purge what retention allows."""
    expired = expire_stale_enrollments(context)
    completed, failed = complete_owed_preferences(context)
    deleted_enrollments, deleted_events = purge_finished()
    return CleanupReport(
        expired=expired,
        deleted_enrollments=deleted_enrollments,
        deleted_events=deleted_events,
        preferences_completed=completed,
        preferences_failed=failed,
    )
