"""System checks: a misconfigured site fails at start-up, never with a 500 later."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.utils.module_loading import import_string

from .conf import app_settings


def _hint(setting: str, example: str) -> str:
    return f"Set COGNITO_MFA_{setting} in your settings, e.g. {example}."


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    if not app_settings.REGION:
        errors.append(
            Error(
                "COGNITO_MFA_REGION is not set.",
                hint=_hint("REGION", '"eu-west-1"'),
                id="cognito_mfa.E001",
            )
        )
    if not app_settings.USER_POOL_ID:
        errors.append(
            Error(
                "COGNITO_MFA_USER_POOL_ID is not set.",
                hint=_hint("USER_POOL_ID", '"eu-west-1_AbCdEf123"'),
                id="cognito_mfa.E002",
            )
        )
    try:
        client_ids = app_settings.APP_CLIENT_IDS
    except TypeError:
        errors.append(
            Error(
                "COGNITO_MFA_APP_CLIENT_IDS is neither a list nor a comma-separated string.",
                hint=_hint("APP_CLIENT_IDS", '["1h57kf5cpq17m0eml12EXAMPLE"]'),
                id="cognito_mfa.E003",
            )
        )
    else:
        if not client_ids:
            errors.append(
                Error(
                    "COGNITO_MFA_APP_CLIENT_IDS is empty.",
                    hint=_hint("APP_CLIENT_IDS", '["1h57kf5cpq17m0eml12EXAMPLE"]'),
                    id="cognito_mfa.E003",
                )
            )
    errors.extend(_check_totp_issuer())
    errors.extend(_check_encryption_keys())
    errors.extend(_check_numbers())
    errors.extend(check_throttle_rates())
    errors.extend(check_throttle_cache())
    errors.extend(check_call_budget())
    try:
        import_string(app_settings.ADAPTER)
    except (ImportError, AttributeError, TypeError, ValueError):
        errors.append(
            Error(
                f"COGNITO_MFA_ADAPTER {_short_repr(app_settings.ADAPTER)} cannot be imported.",
                hint=_hint("ADAPTER", '"cognito_mfa.adapter.DefaultAdapter"'),
                id="cognito_mfa.E007",
            )
        )
    return errors


# setting: (kind, least allowed value, example for the hint, largest allowed value). ``kind``
# is how conf.py reads it: "duration" (a timedelta or a number of seconds), "int" or "float".
# A minimum of 1 (or "positive") where zero makes no sense, 0 where zero has a meaning (no
# leeway, no floor between key fetches, back-off from the first wrong code). The maxima keep
# the date arithmetic built on them (leases, back-offs, retention cut-offs) inside what
# ``datetime`` can hold, far beyond any sensible value.
_TEN_YEARS = 10 * 365 * 24 * 3600.0
_NUMBERS: dict[str, tuple[str, str, str, float]] = {
    "ENROLLMENT_TTL": ("duration", "positive", "timedelta(minutes=10)", _TEN_YEARS),
    "CHALLENGE_SESSION_TTL": ("duration", "positive", "timedelta(minutes=3)", _TEN_YEARS),
    "REAUTH_MAX_AGE": ("duration", "positive", "timedelta(minutes=15)", _TEN_YEARS),
    "RETENTION": ("duration", "positive", "timedelta(days=90)", _TEN_YEARS),
    "FAILURE_BACKOFF_BASE": ("duration", "positive", "timedelta(seconds=30)", _TEN_YEARS),
    "JWKS_CACHE_TTL": ("duration", "positive", "timedelta(hours=6)", _TEN_YEARS),
    "JWKS_MIN_REFETCH_INTERVAL": ("duration", "non-negative", "timedelta(seconds=5)", _TEN_YEARS),
    "JWT_LEEWAY": ("duration", "non-negative", "timedelta(seconds=0)", _TEN_YEARS),
    "MAX_ATTEMPTS": ("int", "positive", "5", 1_000_000),
    "FAILURE_BUDGET": ("int", "non-negative", "10", 1_000_000),
    "FAILURE_HARD_LIMIT": ("int", "positive", "100", 1_000_000),
    "MAX_RETRY_ATTEMPTS": ("int", "positive", "3", 20),
    "ADMIN_REFRESH_CONCURRENCY": ("int", "positive", "8", 256),
    "UNAVAILABLE_RETRY_AFTER": ("int", "positive", "5", 86_400),
    "CONNECT_TIMEOUT": ("float", "positive", "2.0", 300),
    "CALL_BUDGET_RESERVE": ("float", "non-negative", "0.5", 0.95),
    "READ_TIMEOUT": ("float", "positive", "5.0", 300),
}

_RANGE_WORDS = {
    ("duration", "positive"): "longer than 0 seconds",
    ("duration", "non-negative"): "0 seconds or longer",
    ("int", "positive"): "at least 1",
    ("int", "non-negative"): "at least 0",
    ("float", "positive"): "more than 0 seconds",
    ("float", "non-negative"): "at least 0",
}

_KIND_WORDS = {
    "duration": "a timedelta or a number of seconds",
    "int": "a whole number",
    "float": "a number of seconds",
}


def _check_totp_issuer() -> list[CheckMessage]:
    """Warn about an issuer with a colon: the Key Uri Format keeps colons out of the label."""
    issuer = app_settings.TOTP_ISSUER
    if not issuer or ":" not in str(issuer):
        return []
    return [
        Warning(
            f"COGNITO_MFA_TOTP_ISSUER {_short_repr(issuer)} contains a colon, which separates "
            "the issuer from the account in an authenticator's label.",
            hint="The otpauth URI then names the issuer only in its issuer parameter, which "
            "older authenticator apps ignore. Use a dash instead, e.g. "
            '"Example Corp - Berlin".',
            id="cognito_mfa.W002",
        )
    ]


def _check_encryption_keys() -> list[CheckMessage]:
    """Report an ENCRYPTION_KEYS setting of the wrong shape, an empty one, or keys that are
    not Fernet keys."""
    try:
        keys = app_settings.ENCRYPTION_KEYS
    except TypeError:
        return [
            Error(
                "COGNITO_MFA_ENCRYPTION_KEYS is neither a list of Fernet keys nor a "
                "comma-separated string.",
                hint="List the keys newest first, e.g. [os.environ['MFA_KEY']].",
                id="cognito_mfa.E005",
            )
        ]
    if not keys:
        return [
            Error(
                "COGNITO_MFA_ENCRYPTION_KEYS is empty: stored credentials cannot be encrypted.",
                hint="Generate a key with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'",
                id="cognito_mfa.E004",
            )
        ]
    from cryptography.fernet import Fernet

    problems: list[CheckMessage] = []
    for index, key in enumerate(keys):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            problems.append(
                Error(
                    f"COGNITO_MFA_ENCRYPTION_KEYS[{index}] is not a valid Fernet key.",
                    hint="A Fernet key is 32 random bytes, url-safe base64-encoded.",
                    id="cognito_mfa.E005",
                )
            )
    return problems


def _check_numbers() -> list[CheckMessage]:
    """Report number and duration settings that conf.py cannot read or that are out of range."""
    return [problem for name in _NUMBERS for problem in check_number(name)]


def check_number(name: str) -> list[CheckMessage]:
    """Check one number or duration setting of ``_NUMBERS``, e.g. ``check_number("RETENTION")``.

    Management commands that cannot rely on the start-up checks (``call_command`` skips them)
    use it to refuse a bad value before acting on it.
    """
    kind, minimum, example, maximum = _NUMBERS[name]
    setting = f"COGNITO_MFA_{name}"
    hint = f"Use {_KIND_WORDS[kind]}, e.g. {example} (the default)."
    try:
        # Read through conf.py, so exactly what the app accepts at runtime passes.
        value = getattr(app_settings, name)
    except (TypeError, ValueError, OverflowError) as error:
        raw = _short_repr(getattr(settings, setting, None))
        what = "out of range" if isinstance(error, OverflowError) else f"not {_KIND_WORDS[kind]}"
        return [Error(f"{setting} is {what}: got {raw}.", hint=hint, id="cognito_mfa.E006")]
    if isinstance(value, timedelta):
        number, shown = value.total_seconds(), f"{value.total_seconds():g} seconds"
    else:
        number, shown = value, _short_repr(value)
    # NaN fails every comparison: float("nan") is a float conf.py would hand on.
    if not (number > 0 if minimum == "positive" else number >= 0):
        return [
            Error(
                f"{setting} must be {_RANGE_WORDS[kind, minimum]}: got {shown}.",
                hint=hint,
                id="cognito_mfa.E006",
            )
        ]
    if not number <= maximum:  # infinity too
        limit = f"{maximum:g} seconds" if kind != "int" else f"{maximum:,}"
        return [
            Error(
                f"{setting} must be at most {limit}: got {shown}.", hint=hint, id="cognito_mfa.E006"
            )
        ]
    return []


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_throttle_rates() -> list[CheckMessage]:
    """Parse ``COGNITO_MFA_THROTTLE_RATES`` the way the throttles do on each request."""
    from .throttling import (
        DEFAULT_RATES,
        ChallengeThrottle,
        PreferenceThrottle,
        StartThrottle,
        StatusThrottle,
        VerifyThrottle,
    )

    configured = getattr(settings, "COGNITO_MFA_THROTTLE_RATES", {})
    known = ", ".join(repr(scope) for scope in DEFAULT_RATES)
    example = 'e.g. {"start": "20/hour", "verify": "60/hour", "challenge": None}'
    if not isinstance(configured, Mapping):
        return [
            Error(
                "COGNITO_MFA_THROTTLE_RATES must be a dict of scope to rate: got "
                f"{type(configured).__name__}.",
                hint=f"Map the scopes {known} to a rate or None, {example}.",
                id="cognito_mfa.E009",
            )
        ]
    problems: list[CheckMessage] = []
    for scope in configured:
        if scope not in DEFAULT_RATES:
            problems.append(
                Error(
                    f"COGNITO_MFA_THROTTLE_RATES has an unknown scope {_short_repr(scope)}.",
                    hint=f"The scopes are {known}.",
                    id="cognito_mfa.E009",
                )
            )
    for throttle_class in (
        StartThrottle,
        VerifyThrottle,
        ChallengeThrottle,
        PreferenceThrottle,
        StatusThrottle,
    ):
        scope = throttle_class.scope
        try:
            # What each request does: DRF's parse_rate on the merged rates.
            num_requests = throttle_class().num_requests
        except (AttributeError, TypeError, ValueError, KeyError, IndexError):
            num_requests = 0
        if num_requests is not None and num_requests < 1:
            problems.append(
                Error(
                    f"COGNITO_MFA_THROTTLE_RATES[{scope!r}] is not a usable rate: got "
                    f"{_short_repr(configured.get(scope))}.",
                    hint="A rate is '<requests>/<period>' with at least 1 request and a period "
                    "of s, m, h or d (second, minute, hour, day), e.g. '20/hour'; None turns "
                    "the scope's throttle off.",
                    id="cognito_mfa.E009",
                )
            )
    return problems


def check_throttle_cache() -> list[CheckMessage]:
    """Report a ``COGNITO_MFA_THROTTLE_CACHE`` that names no cache in ``CACHES``."""
    alias = getattr(settings, "COGNITO_MFA_THROTTLE_CACHE", "default")
    if isinstance(alias, str) and alias in settings.CACHES:
        return []
    return [
        Error(
            f"COGNITO_MFA_THROTTLE_CACHE {_short_repr(alias)} is not an alias in CACHES.",
            hint="Name a cache configured in CACHES (now: "
            + ", ".join(repr(name) for name in settings.CACHES)
            + "), or add one under this alias; share it between processes, e.g. Redis.",
            id="cognito_mfa.E010",
        )
    ]


def check_call_budget() -> list[CheckMessage]:
    """Report call budget settings that cannot work (E011)."""
    from .budget import DEFAULT_RATES

    def problem(message: str, hint: str) -> list[CheckMessage]:
        return [Error(message, hint=hint, id="cognito_mfa.E011")]

    categories = ", ".join(repr(name) for name in DEFAULT_RATES)
    rates_hint = (
        f"Map the categories {categories} to calls per second or None (unbudgeted), e.g. "
        '{"UserResourceUpdate": 20}.'
    )
    configured = getattr(settings, "COGNITO_MFA_CALL_BUDGET_RATES", None) or {}
    if not isinstance(configured, Mapping):
        return problem(
            "COGNITO_MFA_CALL_BUDGET_RATES must be a dict of category to calls per second: got "
            f"{type(configured).__name__}.",
            rates_hint,
        )
    for category in configured:
        if category not in DEFAULT_RATES:
            return problem(
                f"COGNITO_MFA_CALL_BUDGET_RATES has an unknown category {_short_repr(category)}.",
                rates_hint,
            )
    if check_number("CALL_BUDGET_RESERVE"):
        return []  # E006 says what is wrong with the reserve
    reserve = app_settings.CALL_BUDGET_RESERVE
    for category, rate in app_settings.CALL_BUDGET_RATES.items():
        if rate is None:
            continue
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
            return problem(
                f"COGNITO_MFA_CALL_BUDGET_RATES[{category!r}] is not a positive number of calls "
                f"per second: got {_short_repr(rate)}.",
                rates_hint,
            )
        if rate * (1 - reserve) < 1:
            return problem(
                f"COGNITO_MFA_CALL_BUDGET_RATES[{category!r}] of {rate:g}/s with "
                f"COGNITO_MFA_CALL_BUDGET_RESERVE {reserve:g} leaves less than one call a "
                "second for anything but finishing calls: no enrollment could start.",
                "Raise the rate or lower the reserve.",
            )
    # Unset, it is the throttles' cache, which E010 checks.
    alias = getattr(settings, "COGNITO_MFA_CALL_BUDGET_CACHE", None)
    if alias is not None and (not isinstance(alias, str) or alias not in settings.CACHES):
        return problem(
            f"COGNITO_MFA_CALL_BUDGET_CACHE {_short_repr(alias)} is not an alias in CACHES.",
            "Name a Redis cache configured in CACHES (the budget is shared through it).",
        )
    return []


@register(Tags.caches, deploy=True)
def check_call_budget_shared(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Warn when the call budget is kept per process (W003: each process would spend the whole
    rate on its own). A deployment check: a development server is one process."""
    from .budget import is_shared_cache

    if check_call_budget():
        return []  # E011 says what is wrong first
    alias = app_settings.CALL_BUDGET_CACHE
    budgeted = any(rate is not None for rate in app_settings.CALL_BUDGET_RATES.values())
    if budgeted and not is_shared_cache(alias):
        return [
            Warning(
                f"The Cognito call budget is kept in cache {alias!r}, which is not Redis: it "
                "holds per process only, so every process may spend the whole rate.",
                hint="Point COGNITO_MFA_CALL_BUDGET_CACHE (or COGNITO_MFA_THROTTLE_CACHE) at a "
                "django.core.cache.backends.redis.RedisCache shared by every process and host, "
                "or divide the COGNITO_MFA_CALL_BUDGET_RATES by the number of processes.",
                id="cognito_mfa.W003",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def check_jwks_url(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if app_settings.REGION and app_settings.USER_POOL_ID:
        url = app_settings.JWKS_URL
        if not url.startswith("https://"):
            return [
                Warning(
                    "COGNITO_MFA_JWKS_URL is not https: signing keys could be replaced in transit.",
                    id="cognito_mfa.W001",
                )
            ]
    return []


# Rows read by the stored-credentials check: the newest and the oldest pending ones (the
# oldest are the ones a removed key strands first).
CREDENTIAL_SAMPLE_SIZE = 10


@register(Tags.database)
def check_stored_credentials(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    """Report pending enrollments whose credential no configured key decrypts."""
    from django.db import DatabaseError, router, transaction

    from . import crypto
    from .models import Enrollment, EnrollmentStatus

    alias = router.db_for_read(Enrollment)
    if not databases or alias not in databases:
        return []
    try:
        crypto.build_fernet()
    except (ValueError, TypeError):
        return []  # E004 / E005 already say what is wrong with the keys
    pending = (
        Enrollment.objects.using(alias)
        .filter(status=EnrollmentStatus.PENDING, encrypted_credential__isnull=False)
        .values_list("pk", "encrypted_credential")
    )
    try:
        # A savepoint, so a missing table (``migrate`` runs this before migrating) cannot
        # break a surrounding transaction.
        with transaction.atomic(using=alias):
            sample = dict(pending.order_by("-created_at")[:CREDENTIAL_SAMPLE_SIZE])
            sample.update(pending.order_by("created_at")[:CREDENTIAL_SAMPLE_SIZE])
    except DatabaseError:
        return []
    stranded = len([stored for stored in sample.values() if not crypto.can_decrypt(stored or b"")])
    if not stranded:
        return []
    return [
        Error(
            f"{stranded} of {len(sample)} sampled pending enrollments hold a credential that no "
            "key in COGNITO_MFA_ENCRYPTION_KEYS decrypts; verifying them would fail.",
            hint="Put the key they were encrypted with back into COGNITO_MFA_ENCRYPTION_KEYS "
            "(after the current key), run `manage.py rotate_encryption_keys`, and only then "
            "remove it. If the key is lost for good, these enrollments run out within "
            "COGNITO_MFA_ENROLLMENT_TTL and their users start a new one.",
            id="cognito_mfa.E008",
        )
    ]
