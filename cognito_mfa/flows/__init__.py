"""The use cases: start, verify, cancel, expire, set preference, read status, admin acts.

Views, admin actions and commands call these; they talk to Cognito through
:mod:`cognito_mfa.cognito`, change rows only through the models' QuerySet methods, in short
transactions (never holding a database lock while Cognito is called), and send signals after
commit. One module a use case, over small shared pieces:

- :mod:`.context` who asks; :mod:`.clock` the time; :mod:`.events` audit row + signal;
  :mod:`.failures` the wrong-code budget; :mod:`.step_up` the recent sign-in;
  :mod:`.verify_lease` who may call Cognito for a row; :mod:`.ending` the terminal moves;
  :mod:`.results` what the callers are handed.
- :mod:`.enrollment` start, status, cancel; :mod:`.challenge` the sign-in challenge's token,
  claim and completion; :mod:`.verify` the verify; :mod:`.preference` TOTP on/off and what is
  owed; :mod:`.admin` the help desk's acts; :mod:`.maintenance` the periodic cleanup.
"""

from .admin import (
    REFRESH_BUDGET_PATIENCE_S,
    ResetResult,
    cancel_pending_of_cognito_user,
    refresh_mfa_states,
    reset_totp,
)
from .challenge import (
    ChallengeClaim,
    challenge_token_matches,
    get_challenge_enrollment,
    hash_challenge_token,
    open_challenge_claim,
    seal_challenge_claim,
)
from .clock import now
from .context import Context, without_credentials
from .ending import expire_enrollment
from .enrollment import (
    KEY_ASK_WAIT_MAX,
    KEY_ASKS,
    cancel_enrollment,
    get_enrollment_for_user,
    get_status,
    start_challenge_enrollment,
    start_enrollment,
)
from .failures import check_failure_budget, reset_failure_budget
from .maintenance import (
    CleanupReport,
    cleanup,
    complete_owed_preferences,
    expire_stale_enrollments,
    purge_finished,
)
from .preference import complete_owed_preference, forgive_owed_preferences, set_preference
from .results import StartedEnrollment, VerifiedEnrollment
from .step_up import is_recent_authentication, require_recent_authentication
from .verify import verify_enrollment, verify_own_enrollment

__all__ = [
    "KEY_ASKS",
    "KEY_ASK_WAIT_MAX",
    "REFRESH_BUDGET_PATIENCE_S",
    "ChallengeClaim",
    "CleanupReport",
    "Context",
    "ResetResult",
    "StartedEnrollment",
    "VerifiedEnrollment",
    "cancel_enrollment",
    "cancel_pending_of_cognito_user",
    "challenge_token_matches",
    "check_failure_budget",
    "cleanup",
    "complete_owed_preference",
    "complete_owed_preferences",
    "expire_enrollment",
    "expire_stale_enrollments",
    "forgive_owed_preferences",
    "get_challenge_enrollment",
    "get_enrollment_for_user",
    "get_status",
    "hash_challenge_token",
    "is_recent_authentication",
    "now",
    "open_challenge_claim",
    "purge_finished",
    "refresh_mfa_states",
    "require_recent_authentication",
    "reset_failure_budget",
    "reset_totp",
    "seal_challenge_claim",
    "set_preference",
    "start_challenge_enrollment",
    "start_enrollment",
    "verify_enrollment",
    "verify_own_enrollment",
    "without_credentials",
]
