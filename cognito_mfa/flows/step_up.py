"""Step-up: acts that change which factor guards an account need a recent sign-in."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import exceptions as exc
from ..conf import app_settings
from . import clock

if TYPE_CHECKING:
    from ..tokens import AccessToken


def is_recent_authentication(token: AccessToken) -> bool:
    """Tell whether the token's sign-in (``auth_time``) is younger than the step-up limit."""
    # No auth_time means the age is unknown: treat it as too old (fail closed).
    if token.auth_time is None:
        return False
    return clock.now() - token.auth_time <= app_settings.REAUTH_MAX_AGE


def require_recent_authentication(token: AccessToken) -> None:
    """Raise ReauthenticationRequired unless the token's ``auth_time`` is recent enough."""
    if not is_recent_authentication(token):
        raise exc.ReauthenticationRequired()
