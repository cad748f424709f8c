"""DRF throttles for the MFA endpoints, configured by ``COGNITO_MFA_THROTTLE_RATES`` and stored
in the cache named by ``COGNITO_MFA_THROTTLE_CACHE`` (share it between processes: Redis), and
the early check of the site's Cognito call budget (:class:`CallBudgetThrottle`)."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings
from django.core.cache import caches
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from .adapter import client_address
from .budget import get_budget

DEFAULT_RATES: dict[str, str | None] = {
    "start": "20/hour",
    "verify": "60/hour",
    "challenge": "60/hour",
    # Each costs Cognito calls from the account's shared quotas (SetUserMFAPreference is
    # UserResourceUpdate, 25/s for the whole account; status/ is a GetUser or two).
    "preference": "30/hour",
    "status": "300/hour",
}

# Address throttles count an IPv6 client by its /64: one host usually holds a whole /64, so
# counting single addresses would give it 2**64 buckets.
IPV6_PREFIX = 64


def throttle_address(address: str | None) -> str:
    """Return the bucket of a client address: IPv4 as is, IPv6 by its /64 network."""
    if not address:
        return ""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, IPV6_PREFIX), strict=False))
    return str(parsed)


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

    def get_ident(self, request: Request) -> str:
        return throttle_address(client_address(request.META))

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


class PreferenceThrottle(CognitoMFAThrottle):
    scope = "preference"


class StatusThrottle(CognitoMFAThrottle):
    scope = "status"


class ChallengeThrottle(CognitoMFAThrottle):
    scope = "challenge"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return f"cognito_mfa:throttle:{self.scope}:ip:{self.get_ident(request)}"


class CallBudgetThrottle(BaseThrottle):
    """Refuse a request whose Cognito call the site's call budget would refuse right now.

    In a storm most requests are refused for the budget; found only at the Cognito call, each
    refusal would first have read the user, claimed a lease, locked rows and rolled back. The
    views ask it (``CognitoMFAView.call_budget``) once the Bearer token is known valid and
    before the user is read (a missing or invalid token still gets its 401 first; a host's
    session is read first) and before the per-user throttles are counted (a refusal spends none
    of the user's hourly allowance). A Bearer request's refusal then costs one Redis script
    and no query, and answers what the call's own refusal answers: 429 ``throttled`` with the
    budget's ``Retry-After``. An admitted request takes its call's slot here (within the view's
    :func:`~cognito_mfa.budget.admissions`): the call it was admitted for uses it, so that call
    is not refused once the request's work is done, and a request that ends without it gives
    the slot back.
    """

    operation = "AssociateSoftwareToken"
    finishing = False  # finishing calls (verify) may use the reserve; starts may not

    def allow_request(self, request: Request, view: Any) -> bool:
        get_budget().admit(self.operation, finishing=self.finishing)  # raises when refused
        return True


class StartBudgetThrottle(CallBudgetThrottle):
    """A start's call (``AssociateSoftwareToken``): the unreserved share only."""


class VerifyBudgetThrottle(CallBudgetThrottle):
    """A verify's call (``VerifySoftwareToken``): a finishing call, the reserve included."""

    operation = "VerifySoftwareToken"
    finishing = True
