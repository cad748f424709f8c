"""The help desk's acts on a Cognito user: reset TOTP, cancel pending enrollments, read the
MFA state of many users at once. Each uses Cognito's IAM-authorised ``Admin*`` calls."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from .. import budget, signals
from .. import exceptions as exc
from ..cognito import MFAState, get_client
from ..conf import app_settings
from ..models import AuditEvent, Enrollment, EnrollmentStatus
from . import events
from .context import Context
from .ending import end_pending
from .failures import reset_failure_budget
from .preference import complete_owed, forgive_owed_preferences

logger = logging.getLogger("cognito_mfa.flows")

Kind = AuditEvent.Kind

# How long an admin refresh's worker waits for the call budget before giving up on a user.
REFRESH_BUDGET_PATIENCE_S = 30.0


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
        events.record(
            Kind.MFA_RESET,
            context,
            user=user,
            cognito_username=cognito_username,
            outcome=token_error or "ok",
            detail={"token_deleted": token_deleted},
            signal=signals.mfa_preference_changed,
            signal_kwargs={"enabled": False, "preferred": False},
        )
    return ResetResult(
        cognito_username=cognito_username, token_deleted=token_deleted, token_error=token_error
    )


def cancel_pending_of_cognito_user(context: Context, cognito_username: str, *, reason: str) -> int:
    """Cancel every pending enrollment naming ``cognito_username`` (either flow), a verify in
    flight included: its result is then refused as late. Return how many this call ended."""
    pending = Enrollment.objects.pending().filter(cognito_username=cognito_username)
    return sum(
        end_pending(enrollment, context, EnrollmentStatus.CANCELLED, detail={"reason": reason})
        for enrollment in pending.select_related("user")
    )


def refresh_mfa_states(context: Context, usernames: Iterable[Any]) -> dict[str, MFAState | str]:
    """Read the MFA state of many Cognito users (``AdminGetUser``); value: state or error code.

    Owed preferences of these users are completed first, so the states read are current.
    At most ``COGNITO_MFA_ADMIN_REFRESH_CONCURRENCY`` calls are in flight at once: enough to
    read hundreds of users in seconds, few enough to stay inside the account's request quota
    (the client's standard retry mode absorbs an occasional ``TooManyRequestsException``);
    each worker waits for the site's call budget rather than failing.
    """
    names = list(dict.fromkeys(str(name) for name in usernames if name))
    if not names:
        return {}
    owed = Enrollment.objects.owed_preferences().filter(cognito_username__in=names)
    complete_owed(context, owed.select_related("user"))
    results = _read_states(names)
    users = dict(
        Enrollment.objects.filter(cognito_username__in=names, user__isnull=False)
        # Oldest first, so the dict keeps each name's newest user.
        .order_by("created_at")
        .values_list("cognito_username", "user_id")
    )
    rows = []
    for name, state in results.items():
        row = events.audit_row(
            Kind.STATE_REFRESHED,
            context,
            cognito_username=name,
            outcome="ok" if isinstance(state, MFAState) else state,
            detail=(
                {
                    "software_token_mfa_enabled": state.software_token_mfa_enabled,
                    "preferred_mfa": state.preferred_mfa,
                }
                if isinstance(state, MFAState)
                else {}
            ),
        )
        row.user_id = users.get(name)  # the id is all the row needs: no user is loaded
        rows.append(row)
    AuditEvent.objects.bulk_create(rows)
    return results


def _read_states(names: list[str]) -> dict[str, MFAState | str]:
    """``AdminGetUser`` of each name, a few at a time; value: state or error code."""
    client = get_client()

    def read(name: str) -> MFAState | str:
        # Worker threads only talk to Cognito; the database is used from the caller's thread
        # alone. They wait for the call budget instead of failing: the refresh is not in a hurry.
        try:
            with budget.waiting(REFRESH_BUDGET_PATIENCE_S):
                return client.admin_get_user(username=name)
        except exc.CognitoMFAError as error:
            return error.code

    workers = max(1, min(app_settings.ADMIN_REFRESH_CONCURRENCY, len(names)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cognito-mfa-refresh") as pool:
        return dict(zip(names, pool.map(read, names), strict=True))
