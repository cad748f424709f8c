"""Internal receivers, connected in ``AppConfig.ready``."""

from __future__ import annotations

from typing import Any

from .budget import reset_budget
from .cognito import reset_client
from .tokens import jwks_cache

# Settings that the process-wide Cognito client or key cache was built from.
_CLIENT_SETTINGS = {
    "COGNITO_MFA_REGION",
    "COGNITO_MFA_ENDPOINT_URL",
    "COGNITO_MFA_CONNECT_TIMEOUT",
    "COGNITO_MFA_READ_TIMEOUT",
    "COGNITO_MFA_MAX_RETRY_ATTEMPTS",
    "COGNITO_MFA_CLIENT_FACTORY",
}
# Settings the process's call budget was built from (rates and reserve are read per call).
_BUDGET_SETTINGS = {"COGNITO_MFA_CALL_BUDGET_CACHE", "COGNITO_MFA_THROTTLE_CACHE", "CACHES"}
# Remembered tokens (tokens.ValidatedTokens) need no entry here: each is checked against the
# current key set, issuer, client ids and leeway whenever it is used.
_JWKS_SETTINGS = {
    "COGNITO_MFA_JWKS_URL",
    "COGNITO_MFA_JWKS_FETCHER",
    "COGNITO_MFA_REGION",
    "COGNITO_MFA_USER_POOL_ID",
}


def reset_on_setting_change(*, setting: str, **kwargs: Any) -> None:
    """Drop the cached client / signing keys when a setting they depend on changes."""
    if setting in _CLIENT_SETTINGS:
        reset_client()
    if setting in _BUDGET_SETTINGS:
        reset_budget()
    if setting in _JWKS_SETTINGS:
        jwks_cache.clear()
