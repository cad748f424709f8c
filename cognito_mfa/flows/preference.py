"""Whether TOTP guards the user's sign-in: the user's choice, the verify's "turn it on", and
the "turn on" still owed when Cognito could not be told at the verify."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from .. import exceptions as exc
from .. import signals
from ..cognito import CognitoClient, get_client
from ..conf import app_settings
from ..models import AuditEvent, Enrollment
from . import clock, events
from .context import Context
from .results import status_payload
from .step_up import require_recent_authentication

if TYPE_CHECKING:
    from ..tokens import AccessToken

logger = logging.getLogger("cognito_mfa.flows")

Kind = AuditEvent.Kind


def set_preference(
    context: Context, *, user: Any, token: AccessToken, enabled: bool, preferred: bool
) -> dict[str, Any]:
    """Turn the user's TOTP MFA on/off and set whether it is preferred; return the status.

    Turning it off needs a recent sign-in.
    """
    if not enabled:
        require_recent_authentication(token)
    forgive_owed_preferences(token.username)
    preferred = preferred and enabled
    client = get_client()
    client.set_user_mfa_preference(access_token=token.raw, enabled=enabled, preferred=preferred)
    with transaction.atomic():
        events.record(
            Kind.PREFERENCE_CHANGED,
            context,
            user=user,
            cognito_username=token.username,
            detail={"enabled": enabled, "preferred": preferred},
            signal=signals.mfa_preference_changed,
            signal_kwargs={"enabled": enabled, "preferred": preferred},
        )
    state = client.get_user(access_token=token.raw)
    pending = Enrollment.objects.pending().filter(user=user, expires_at__gt=clock.now()).first()
    return status_payload(state, pending)


@sensitive_variables("access_token")
def turn_on_totp(client: CognitoClient, access_token: str, preferred: bool) -> bool:
    """Enable TOTP in Cognito with the user's token; return False (preference owed) if
    Cognito could not be told."""
    try:
        client.set_user_mfa_preference(access_token=access_token, enabled=True, preferred=preferred)
    except exc.CognitoMFAError as error:
        logger.warning("cognito_mfa: enabling TOTP failed with %s; retry owed", error.code)
        return False
    return True


def owes_totp_preference(cognito_username: str) -> bool:
    """Tell whether a verified TOTP of this user still waits for ``SetUserMFAPreference``."""
    return Enrollment.objects.owed_preferences().filter(cognito_username=cognito_username).exists()


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
            events.record(
                Kind.PREFERENCE_CHANGED,
                context,
                enrollment=enrollment,
                detail={"enabled": True, "preferred": preferred},
                signal=signals.mfa_preference_changed,
                signal_kwargs={"enabled": True, "preferred": preferred},
            )
    return changed


def complete_owed(
    context: Context, owed: Iterable[Enrollment], *, stop_at_failure: bool = False
) -> tuple[int, int]:
    """Complete the owed preferences of ``owed``; return ``(completed, failed)``.

    One still failing stays owed, for a later request, the cleanup command or an admin
    refresh; ``stop_at_failure``: Cognito is then likely still unavailable, so a user's
    request does not wait for the others.
    """
    completed = failed = 0
    for enrollment in owed:
        try:
            completed += complete_owed_preference(enrollment, context)
        except exc.CognitoMFAError as error:
            failed += 1
            logger.warning("cognito_mfa: completing an owed preference failed with %s", error.code)
            if stop_at_failure:
                break
    return completed, failed


def forgive_owed_preferences(cognito_username: str) -> None:
    """Drop a still-owed "turn TOTP on" of this user: a later explicit choice (the user's
    preference, an admin reset) wins, and a retry must not undo it. Done before calling
    Cognito, so a completion racing with the choice finds nothing owed."""
    Enrollment.objects.forgive_owed_preferences(cognito_username)
