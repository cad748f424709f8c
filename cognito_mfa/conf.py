"""Settings of cognito_mfa, read from ``django.conf.settings`` on every access.

Nothing is cached, so ``override_settings`` and pytest-django's ``settings`` fixture work
without a reload. Validation lives in :mod:`cognito_mfa.checks`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings

PREFIX = "COGNITO_MFA_"

# Calls per second per Cognito quota category (cognito_mfa.budget): safely under Cognito's
# quotas (25, 120, 120 per second), leaving the rest of the account's quota to other
# applications and to botocore's retries of safe calls.
DEFAULT_CALL_BUDGET_RATES: dict[str, float | None] = {
    "UserResourceUpdate": 20.0,
    "UserRead": 100.0,
    "UserAuthentication": 100.0,
}


def _get(name: str, default: Any = None) -> Any:
    return getattr(settings, PREFIX + name, default)


def _as_timedelta(value: Any) -> timedelta:
    """Accept a timedelta or a number of seconds (handy in environment-driven settings)."""
    if isinstance(value, timedelta):
        return value
    return timedelta(seconds=float(value))


class AppSettings:
    """Typed view of the ``COGNITO_MFA_*`` settings."""

    # --- the pool -------------------------------------------------------------------------
    @property
    def REGION(self) -> str | None:
        """AWS region of the user pool."""
        return _get("REGION")

    @property
    def USER_POOL_ID(self) -> str | None:
        """Id of the user pool, e.g. ``eu-west-1_AbCdEf123``."""
        return _get("USER_POOL_ID")

    @property
    def APP_CLIENT_IDS(self) -> list[str]:
        """App client ids whose access tokens are accepted."""
        value = _get("APP_CLIENT_IDS") or []
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return list(value)

    @property
    def APP_CLIENT_SECRET(self) -> str | None:
        """Secret of a confidential app client, used to compute ``SECRET_HASH``."""
        return _get("APP_CLIENT_SECRET")

    @property
    def ENDPOINT_URL(self) -> str | None:
        """Cognito endpoint override (a VPC endpoint, or moto in tests and the demo)."""
        return _get("ENDPOINT_URL")

    @property
    def ISSUER_URL(self) -> str:
        """The ``iss`` claim of the pool's tokens (always the public AWS form)."""
        return f"https://cognito-idp.{self.REGION}.amazonaws.com/{self.USER_POOL_ID}"

    @property
    def JWKS_URL(self) -> str:
        """Where the pool's signing keys are fetched from."""
        return _get("JWKS_URL") or f"{self.ISSUER_URL}/.well-known/jwks.json"

    @property
    def JWKS_FETCHER(self) -> str:
        """Dotted path of the callable that fetches the JWKS document: ``fetch(url) -> dict``."""
        return _get("JWKS_FETCHER", "cognito_mfa.tokens.fetch_jwks_over_http")

    @property
    def JWKS_CACHE_TTL(self) -> timedelta:
        """How long fetched signing keys are trusted before a background refresh."""
        return _as_timedelta(_get("JWKS_CACHE_TTL", timedelta(hours=6)))

    @property
    def JWKS_MIN_REFETCH_INTERVAL(self) -> timedelta:
        """Least time between two fetches caused by an unknown ``kid``."""
        return _as_timedelta(_get("JWKS_MIN_REFETCH_INTERVAL", timedelta(seconds=5)))

    @property
    def JWT_LEEWAY(self) -> timedelta:
        """Clock skew tolerated on ``exp``."""
        return _as_timedelta(_get("JWT_LEEWAY", timedelta(seconds=0)))

    # --- stored credentials ---------------------------------------------------------------
    @property
    def ENCRYPTION_KEYS(self) -> list[str]:
        """Fernet keys: the first encrypts, all decrypt."""
        value = _get("ENCRYPTION_KEYS") or []
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return list(value)

    # --- enrollment policy ----------------------------------------------------------------
    @property
    def TOTP_ISSUER(self) -> str | None:
        """Issuer shown in authenticator apps; ``None`` means the current Site's name."""
        return _get("TOTP_ISSUER")

    @property
    def ENROLLMENT_TTL(self) -> timedelta:
        """How long a pending enrollment waits for its first valid code."""
        return _as_timedelta(_get("ENROLLMENT_TTL", timedelta(minutes=10)))

    @property
    def CHALLENGE_SESSION_TTL(self) -> timedelta:
        """Life of an ``MFA_SETUP`` Session (the app client's auth-session validity)."""
        return _as_timedelta(_get("CHALLENGE_SESSION_TTL", timedelta(minutes=3)))

    @property
    def CHALLENGE_COMPLETE_AUTH(self) -> bool:
        """Answer ``RespondToAuthChallenge`` server-side and return the tokens.

        On by default: the tokens are the only proof of whose Session it was, so only then does
        the app act on the named user's account (turn TOTP on). Always on when the app client
        has a secret: only the server can compute ``SECRET_HASH``.
        """
        return bool(_get("CHALLENGE_COMPLETE_AUTH", True)) or bool(self.APP_CLIENT_SECRET)

    @property
    def MAX_ATTEMPTS(self) -> int:
        """Wrong codes before an enrollment locks."""
        return int(_get("MAX_ATTEMPTS", 5))

    @property
    def SET_PREFERRED(self) -> bool:
        """Make TOTP the preferred MFA once a device is verified."""
        return bool(_get("SET_PREFERRED", True))

    @property
    def REAUTH_MAX_AGE(self) -> timedelta:
        """Max age of ``auth_time`` to replace an existing TOTP or turn it off."""
        return _as_timedelta(_get("REAUTH_MAX_AGE", timedelta(minutes=15)))

    @property
    def FAILURE_BUDGET(self) -> int:
        """Consecutive wrong codes per user, across enrollments, before back-off starts."""
        return int(_get("FAILURE_BUDGET", 10))

    @property
    def FAILURE_BACKOFF_BASE(self) -> timedelta:
        """First back-off once the failure budget is spent; doubles with each failure."""
        return _as_timedelta(_get("FAILURE_BACKOFF_BASE", timedelta(seconds=30)))

    @property
    def FAILURE_HARD_LIMIT(self) -> int:
        """Consecutive wrong codes after which a user cannot verify until an admin resets."""
        return int(_get("FAILURE_HARD_LIMIT", 100))

    @property
    def RETENTION(self) -> timedelta:
        """How long finished enrollments and their audit events are kept."""
        return _as_timedelta(_get("RETENTION", timedelta(days=90)))

    @property
    def ADOPT_EXISTING_USERS(self) -> bool:
        """Bind a Cognito user seen for the first time to the site account of the same
        username, if that account is active, bound to no one and neither staff nor superuser.
        Off: every Cognito user gets an account of its own (or is refused)."""
        return bool(_get("ADOPT_EXISTING_USERS", True))

    @property
    def ADAPTER(self) -> str:
        """Dotted path of the adapter class."""
        return _get("ADAPTER", "cognito_mfa.adapter.DefaultAdapter")

    # --- the AWS client -------------------------------------------------------------------
    @property
    def CLIENT_FACTORY(self) -> str:
        """Dotted path of the callable that builds the ``cognito-idp`` client: ``build()``."""
        return _get("CLIENT_FACTORY", "cognito_mfa.cognito.build_boto3_client")

    @property
    def CONNECT_TIMEOUT(self) -> float:
        """Seconds to open a connection to Cognito."""
        return float(_get("CONNECT_TIMEOUT", 2.0))

    @property
    def READ_TIMEOUT(self) -> float:
        """Seconds to wait for Cognito's answer."""
        return float(_get("READ_TIMEOUT", 5.0))

    @property
    def MAX_RETRY_ATTEMPTS(self) -> int:
        """Total attempts (standard retry mode) for calls that are safe to repeat."""
        return int(_get("MAX_RETRY_ATTEMPTS", 3))

    @property
    def ADMIN_REFRESH_CONCURRENCY(self) -> int:
        """Cognito calls in flight at once when an admin refreshes many users."""
        return int(_get("ADMIN_REFRESH_CONCURRENCY", 8))

    @property
    def UNAVAILABLE_RETRY_AFTER(self) -> int:
        """Seconds sent in ``Retry-After`` when Cognito is down or throttling."""
        return int(_get("UNAVAILABLE_RETRY_AFTER", 5))

    # --- the call budget (cognito_mfa.budget) ----------------------------------------------
    @property
    def CALL_BUDGET_RATES(self) -> dict[str, float | None]:
        """Calls per second the site may make, per Cognito quota category; None: unbudgeted."""
        return {**DEFAULT_CALL_BUDGET_RATES, **(_get("CALL_BUDGET_RATES") or {})}

    @property
    def CALL_BUDGET_RESERVE(self) -> float:
        """Share of each second's budget only finishing calls (verify, its preference) use."""
        return float(_get("CALL_BUDGET_RESERVE", 0.5))

    @property
    def CALL_BUDGET_CACHE(self) -> str:
        """Cache alias whose Redis keeps the budget (default: the throttles' cache)."""
        return _get("CALL_BUDGET_CACHE") or getattr(
            settings, "COGNITO_MFA_THROTTLE_CACHE", "default"
        )


app_settings = AppSettings()
