"""System checks: a misconfigured site fails at start-up, never with a 500 later."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import DatabaseError, router, transaction
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from . import crypto
from .budget import is_shared_cache
from .conf import DEFAULT_CALL_BUDGET_RATES, app_settings
from .models import Enrollment, EnrollmentStatus
from .throttling import (
    DEFAULT_RATES,
    ChallengeThrottle,
    PreferenceThrottle,
    StartThrottle,
    StatusThrottle,
    VerifyThrottle,
)


def _hint(setting: str, example: str) -> str:
    return _("Set COGNITO_MFA_%(setting)s in your settings, e.g. %(example)s.") % {
        "setting": setting,
        "example": example,
    }


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    if not app_settings.REGION:
        errors.append(
            Error(
                _("COGNITO_MFA_REGION is not set."),
                hint=_hint("REGION", '"eu-west-1"'),
                id="cognito_mfa.E001",
            )
        )
    if not app_settings.USER_POOL_ID:
        errors.append(
            Error(
                _("COGNITO_MFA_USER_POOL_ID is not set."),
                hint=_hint("USER_POOL_ID", '"eu-west-1_AbCdEf123"'),
                id="cognito_mfa.E002",
            )
        )
    try:
        client_ids = app_settings.APP_CLIENT_IDS
    except TypeError:
        errors.append(
            Error(
                _("COGNITO_MFA_APP_CLIENT_IDS is neither a list nor a comma-separated string."),
                hint=_hint("APP_CLIENT_IDS", '["1h57kf5cpq17m0eml12EXAMPLE"]'),
                id="cognito_mfa.E003",
            )
        )
    else:
        if not client_ids:
            errors.append(
                Error(
                    _("COGNITO_MFA_APP_CLIENT_IDS is empty."),
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
                _("COGNITO_MFA_ADAPTER %(path)s cannot be imported.")
                % {"path": _short_repr(app_settings.ADAPTER)},
                hint=_hint("ADAPTER", '"cognito_mfa.adapter.DefaultAdapter"'),
                id="cognito_mfa.E007",
            )
        )
    errors.extend(_check_seams())
    return errors


# The boundary's seams (dotted paths of callables): setting, default for the hint, check id.
_SEAMS = (
    ("CLIENT_FACTORY", '"cognito_mfa.cognito.build_boto3_client"', "cognito_mfa.E012"),
    ("JWKS_FETCHER", '"cognito_mfa.tokens.fetch_jwks_over_http"', "cognito_mfa.E013"),
)


def _check_seams() -> list[CheckMessage]:
    """Report a client factory (E012) or JWKS fetcher (E013) whose dotted path does not import
    or names nothing callable: the first request would fail."""
    errors: list[CheckMessage] = []
    for name, default, check_id in _SEAMS:
        path = getattr(app_settings, name)
        try:
            target = import_string(path)
        except (ImportError, AttributeError, TypeError, ValueError):
            target = None
        if not callable(target):
            errors.append(
                Error(
                    _("COGNITO_MFA_%(name)s %(path)s cannot be imported or is not callable.")
                    % {"name": name, "path": _short_repr(path)},
                    hint=_hint(name, default),
                    id=check_id,
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
    ("duration", "positive"): gettext_lazy("longer than 0 seconds"),
    ("duration", "non-negative"): gettext_lazy("0 seconds or longer"),
    ("int", "positive"): gettext_lazy("at least 1"),
    ("int", "non-negative"): gettext_lazy("at least 0"),
    ("float", "positive"): gettext_lazy("more than 0 seconds"),
    ("float", "non-negative"): gettext_lazy("at least 0"),
}

_KIND_WORDS = {
    "duration": gettext_lazy("a timedelta or a number of seconds"),
    "int": gettext_lazy("a whole number"),
    "float": gettext_lazy("a number of seconds"),
}


def _check_totp_issuer() -> list[CheckMessage]:
    """Warn about an issuer with a colon: the Key Uri Format keeps colons out of the label."""
    issuer = app_settings.TOTP_ISSUER
    if not issuer or ":" not in str(issuer):
        return []
    return [
        Warning(
            _(
                "COGNITO_MFA_TOTP_ISSUER %(issuer)s contains a colon, which separates the "
                "issuer from the account in an authenticator's label."
            )
            % {"issuer": _short_repr(issuer)},
            hint=_(
                "The otpauth URI then names the issuer only in its issuer parameter, which "
                "older authenticator apps ignore. Use a dash instead, e.g. %(example)s."
            )
            % {"example": '"Example Corp - Berlin"'},
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
                _(
                    "COGNITO_MFA_ENCRYPTION_KEYS is neither a list of Fernet keys nor a "
                    "comma-separated string."
                ),
                hint=_("List the keys newest first, e.g. [os.environ['MFA_KEY']]."),
                id="cognito_mfa.E005",
            )
        ]
    if not keys:
        return [
            Error(
                _("COGNITO_MFA_ENCRYPTION_KEYS is empty: stored credentials cannot be encrypted."),
                hint=_("Generate a key with: %(command)s")
                % {
                    "command": "python -c 'from cryptography.fernet import Fernet; "
                    "print(Fernet.generate_key().decode())'"
                },
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
                    _("COGNITO_MFA_ENCRYPTION_KEYS[%(index)d] is not a valid Fernet key.")
                    % {"index": index},
                    hint=_("A Fernet key is 32 random bytes, url-safe base64-encoded."),
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
    hint = _("Use %(kind)s, e.g. %(example)s (the default).") % {
        "kind": _KIND_WORDS[kind],
        "example": example,
    }
    try:
        # Read through conf.py, so exactly what the app accepts at runtime passes.
        value = getattr(app_settings, name)
    except (TypeError, ValueError, OverflowError) as error:
        raw = _short_repr(getattr(settings, setting, None))
        if isinstance(error, OverflowError):
            message = _("%(setting)s is out of range: got %(value)s.")
        else:
            message = _("%(setting)s is not %(kind)s: got %(value)s.")
        values = {"setting": setting, "kind": _KIND_WORDS[kind], "value": raw}
        return [Error(message % values, hint=hint, id="cognito_mfa.E006")]
    if isinstance(value, timedelta):
        number = value.total_seconds()
        shown = _("%(seconds)s seconds") % {"seconds": f"{number:g}"}
    else:
        number, shown = value, _short_repr(value)
    # NaN fails every comparison: float("nan") is a float conf.py would hand on.
    if not (number > 0 if minimum == "positive" else number >= 0):
        return [
            Error(
                _("%(setting)s must be %(range)s: got %(value)s.")
                % {"setting": setting, "range": _RANGE_WORDS[kind, minimum], "value": shown},
                hint=hint,
                id="cognito_mfa.E006",
            )
        ]
    if not number <= maximum:  # infinity too
        if kind == "int":
            limit = f"{maximum:,}"
        else:
            limit = _("%(seconds)s seconds") % {"seconds": f"{maximum:g}"}
        return [
            Error(
                _("%(setting)s must be at most %(limit)s: got %(value)s.")
                % {"setting": setting, "limit": limit, "value": shown},
                hint=hint,
                id="cognito_mfa.E006",
            )
        ]
    return []


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_throttle_rates() -> list[CheckMessage]:
    """Parse ``COGNITO_MFA_THROTTLE_RATES`` the way the throttles do on each request."""
    configured = getattr(settings, "COGNITO_MFA_THROTTLE_RATES", {})
    known = ", ".join(repr(scope) for scope in DEFAULT_RATES)
    example = '{"start": "20/hour", "verify": "60/hour", "challenge": None}'
    if not isinstance(configured, Mapping):
        return [
            Error(
                _("COGNITO_MFA_THROTTLE_RATES must be a dict of scope to rate: got %(type)s.")
                % {"type": type(configured).__name__},
                hint=_("Map the scopes %(scopes)s to a rate or None, e.g. %(example)s.")
                % {"scopes": known, "example": example},
                id="cognito_mfa.E009",
            )
        ]
    problems: list[CheckMessage] = []
    for scope in configured:
        if scope not in DEFAULT_RATES:
            problems.append(
                Error(
                    _("COGNITO_MFA_THROTTLE_RATES has an unknown scope %(scope)s.")
                    % {"scope": _short_repr(scope)},
                    hint=_("The scopes are %(scopes)s.") % {"scopes": known},
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
                    _("COGNITO_MFA_THROTTLE_RATES[%(scope)s] is not a usable rate: got %(rate)s.")
                    % {"scope": repr(scope), "rate": _short_repr(configured.get(scope))},
                    hint=_(
                        "A rate is '<requests>/<period>' with at least 1 request and a period "
                        "of s, m, h or d (second, minute, hour, day), e.g. '20/hour'; None "
                        "turns the scope's throttle off."
                    ),
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
            _("COGNITO_MFA_THROTTLE_CACHE %(alias)s is not an alias in CACHES.")
            % {"alias": _short_repr(alias)},
            hint=_(
                "Name a cache configured in CACHES (now: %(aliases)s), or add one under this "
                "alias; share it between processes, e.g. Redis."
            )
            % {"aliases": ", ".join(repr(name) for name in settings.CACHES)},
            id="cognito_mfa.E010",
        )
    ]


def check_call_budget() -> list[CheckMessage]:
    """Report call budget settings that cannot work (E011)."""

    def problem(message: str, hint: str) -> list[CheckMessage]:
        return [Error(message, hint=hint, id="cognito_mfa.E011")]

    categories = ", ".join(repr(name) for name in DEFAULT_CALL_BUDGET_RATES)
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
        if category not in DEFAULT_CALL_BUDGET_RATES:
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
                    _(
                        "COGNITO_MFA_JWKS_URL is not https: signing keys could be replaced in "
                        "transit."
                    ),
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
            _(
                "%(stranded)d of %(sampled)d sampled pending enrollments hold a credential that "
                "no key in COGNITO_MFA_ENCRYPTION_KEYS decrypts; verifying them would fail."
            )
            % {"stranded": stranded, "sampled": len(sample)},
            hint=_(
                "Put the key they were encrypted with back into COGNITO_MFA_ENCRYPTION_KEYS "
                "(after the current key), run `manage.py rotate_encryption_keys`, and only then "
                "remove it. If the key is lost for good, these enrollments run out within "
                "COGNITO_MFA_ENROLLMENT_TTL and their users start a new one."
            ),
            id="cognito_mfa.E008",
        )
    ]
