"""The settings that name the user pool, the app's clients and the seams (E001-E003, E007,
E012, E013), the authenticator label's issuer (W002); and the check that runs every check
of the settings at start-up."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Warning, register
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..conf import app_settings
from .messages import setting_hint, short_repr
from .numbers import check_numbers
from .rates import check_call_budget, check_throttle_cache, check_throttle_rates
from .security import check_encryption_keys

# Settings nothing works without: setting, what is said when it is missing, hint, check id.
_REQUIRED = (
    ("REGION", gettext_lazy("COGNITO_MFA_REGION is not set."), '"eu-west-1"', "cognito_mfa.E001"),
    (
        "USER_POOL_ID",
        gettext_lazy("COGNITO_MFA_USER_POOL_ID is not set."),
        '"eu-west-1_AbCdEf123"',
        "cognito_mfa.E002",
    ),
)


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Run every check of the settings; each says what is wrong under its own id."""
    errors = _check_user_pool()
    errors.extend(_check_totp_issuer())
    errors.extend(check_encryption_keys())
    errors.extend(check_numbers())
    errors.extend(check_throttle_rates())
    errors.extend(check_throttle_cache())
    errors.extend(check_call_budget())
    try:
        import_string(app_settings.ADAPTER)
    except (ImportError, AttributeError, TypeError, ValueError):
        errors.append(
            Error(
                _("COGNITO_MFA_ADAPTER %(path)s cannot be imported.")
                % {"path": short_repr(app_settings.ADAPTER)},
                hint=setting_hint("ADAPTER", '"cognito_mfa.adapter.DefaultAdapter"'),
                id="cognito_mfa.E007",
            )
        )
    errors.extend(_check_seams())
    return errors


def _check_user_pool() -> list[CheckMessage]:
    """Report a missing region (E001) or user pool id (E002), and app client ids that are
    missing or neither a list nor a comma-separated string (E003)."""
    problems: list[CheckMessage] = [
        Error(str(message), hint=setting_hint(name, example), id=check_id)
        for name, message, example, check_id in _REQUIRED
        if not getattr(app_settings, name)
    ]
    try:
        no_client_ids = not app_settings.APP_CLIENT_IDS
    except TypeError:
        message = _("COGNITO_MFA_APP_CLIENT_IDS is neither a list nor a comma-separated string.")
    else:
        message = _("COGNITO_MFA_APP_CLIENT_IDS is empty.") if no_client_ids else ""
    if message:
        problems.append(
            Error(
                message,
                hint=setting_hint("APP_CLIENT_IDS", '["1h57kf5cpq17m0eml12EXAMPLE"]'),
                id="cognito_mfa.E003",
            )
        )
    return problems


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
                    % {"name": name, "path": short_repr(path)},
                    hint=setting_hint(name, default),
                    id=check_id,
                )
            )
    return errors


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
            % {"issuer": short_repr(issuer)},
            hint=_(
                "The otpauth URI then names the issuer only in its issuer parameter, which "
                "older authenticator apps ignore. Use a dash instead, e.g. %(example)s."
            )
            % {"example": '"Example Corp - Berlin"'},
            id="cognito_mfa.W002",
        )
    ]
