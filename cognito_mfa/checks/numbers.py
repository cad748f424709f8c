"""The number and duration settings (E006): readable by conf.py, and inside their range."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.checks import CheckMessage, Error
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..conf import app_settings
from .messages import short_repr

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


def check_numbers() -> list[CheckMessage]:
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
        raw = short_repr(getattr(settings, setting, None))
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
        number, shown = value, short_repr(value)
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
