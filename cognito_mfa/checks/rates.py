"""The throttles' rates and cache (E009, E010) and the Cognito call budget (E011, W003)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.utils.translation import gettext as _

from ..budget import is_shared_cache
from ..conf import DEFAULT_CALL_BUDGET_RATES, app_settings
from ..throttling import (
    DEFAULT_RATES,
    ChallengeThrottle,
    PreferenceThrottle,
    StartThrottle,
    StatusThrottle,
    VerifyThrottle,
)
from .messages import short_repr
from .numbers import check_number


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
                    % {"scope": short_repr(scope)},
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
                    % {"scope": repr(scope), "rate": short_repr(configured.get(scope))},
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
            % {"alias": short_repr(alias)},
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
                f"COGNITO_MFA_CALL_BUDGET_RATES has an unknown category {short_repr(category)}.",
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
                f"per second: got {short_repr(rate)}.",
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
            f"COGNITO_MFA_CALL_BUDGET_CACHE {short_repr(alias)} is not an alias in CACHES.",
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
