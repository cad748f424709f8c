"""DRF throttles for the MFA endpoints, configured by ``COGNITO_MFA_THROTTLE_RATES`` and stored
in the cache named by ``COGNITO_MFA_THROTTLE_CACHE`` (share it between processes: Redis)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.cache import caches
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

DEFAULT_RATES: dict[str, str | None] = {
    "start": "20/hour",
    "verify": "60/hour",
    "challenge": "60/hour",
}


class CognitoMFAThrottle(SimpleRateThrottle):
    """Rate limit per user (per client address for the sign-in challenge endpoints)."""

    scope: str = "verify"

    def __init__(self) -> None:  # read the rate lazily, on every request
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)

    @property
    def cache(self) -> Any:  # type: ignore[override]
        return caches[getattr(settings, "COGNITO_MFA_THROTTLE_CACHE", "default")]

    def get_rate(self) -> str | None:
        rates = {**DEFAULT_RATES, **getattr(settings, "COGNITO_MFA_THROTTLE_RATES", {})}
        return rates.get(self.scope)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if request.user is not None and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return f"cognito_mfa:throttle:{self.scope}:{ident}"


class StartThrottle(CognitoMFAThrottle):
    scope = "start"


class VerifyThrottle(CognitoMFAThrottle):
    scope = "verify"


class ChallengeThrottle(CognitoMFAThrottle):
    scope = "challenge"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return f"cognito_mfa:throttle:{self.scope}:ip:{self.get_ident(request)}"
