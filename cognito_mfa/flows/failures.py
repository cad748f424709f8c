"""The failure budget: consecutive wrong codes of one Cognito user, across enrollments.

Past ``COGNITO_MFA_FAILURE_BUDGET`` the user backs off, twice as long each time; at
``COGNITO_MFA_FAILURE_HARD_LIMIT`` only a success or an admin reset lifts it.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy

from .. import exceptions as exc
from ..conf import app_settings
from ..models import FailureCounter
from . import clock


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
    if blocked_until is not None and blocked_until > clock.now():
        wait = (blocked_until - clock.now()).total_seconds()
        raise exc.Throttled(retry_after=int(wait) + 1)
    return True


def count_failure(cognito_username: str) -> None:
    """Count one more wrong code of the user (inside the caller's transaction)."""
    FailureCounter.objects.count_failure(
        cognito_username,
        budget=app_settings.FAILURE_BUDGET,
        backoff_base=app_settings.FAILURE_BACKOFF_BASE,
        at=clock.now(),
    )


def reset_failure_budget(cognito_username: str) -> None:
    """Forget a user's consecutive wrong codes (after success or an admin reset)."""
    FailureCounter.objects.forget(cognito_username)
