"""What the flows hand back to views, admin actions and commands.

Result objects carry secrets and tokens to the caller once: their repr (error reports,
debuggers, a stray log line) leaves them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..cognito import MFAState
from ..models import Enrollment


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


@dataclass(frozen=True)
class Accepted:
    """What follows from a code Cognito accepted: what the row records, what is announced,
    what the caller is handed next."""

    preference_owed: bool  # TOTP is not on in Cognito yet: a later "turn on" is owed
    preference_set: bool  # TOTP was turned on just now (announced with the verify)
    # A sign-in challenge: the site user and Cognito username its tokens proved (else None),
    # or a claim no tokens proved (the row then names nobody).
    proven_user: Any = None
    proven_username: str | None = None
    unproven_claim: bool = False
    # A sign-in challenge: what continues it, and the audit outcome of answering it here.
    session: str | None = field(default=None, repr=False)
    authentication_result: dict[str, Any] | None = field(default=None, repr=False)
    completion_outcome: str | None = None


def status_payload(state: MFAState, pending: Enrollment | None) -> dict[str, Any]:
    """The API's answer about a user's MFA: Cognito's state and the pending enrollment."""
    return {
        "software_token_mfa_enabled": state.software_token_mfa_enabled,
        "preferred_mfa": state.preferred_mfa,
        "pending_enrollment": (
            {"id": str(pending.id), "expires_at": pending.expires_at} if pending else None
        ),
    }
