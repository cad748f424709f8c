"""The error hierarchy of cognito_mfa.

Every error has a stable ``code`` (public API, see the error table of docs/api.md) and the HTTP
status the REST API answers with. The same code travels into API responses, signals, audit
rows and admin messages. The ``detail`` texts are translated lazily (in the language of the
request that sees them); the ``code`` never is. Apart from the lazy ``gettext``, which needs
no configured settings, this module imports nothing from Django or DRF, so flows, commands and
the Cognito boundary can raise these errors anywhere.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _


class CognitoMFAError(Exception):
    """Base class: every error the app raises on purpose."""

    code = "error"
    status = 500
    default_detail: Any = _("The request could not be completed.")

    def __init__(self, detail: Any = None, **extra: Any) -> None:
        # ``detail`` may be a lazy translation: it is rendered when the answer is built.
        self.detail = detail or self.default_detail
        self.extra = extra
        super().__init__(self.detail)

    def __str__(self) -> str:
        return str(self.detail)

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON body clients receive: ``code``, ``detail`` (in the active
        language) and any extras."""
        return {"code": self.code, "detail": str(self.detail), **self.extra}


class InvalidInput(CognitoMFAError):
    code = "invalid"
    status = 400
    default_detail = _("The request body is not valid.")


class InvalidCode(CognitoMFAError):
    code = "invalid_code"
    status = 400
    default_detail = _("The code was not accepted. Check the authenticator app and try again.")

    def __init__(self, detail: Any = None, *, attempts_remaining: int | None = None) -> None:
        super().__init__(detail, attempts_remaining=attempts_remaining)

    @property
    def attempts_remaining(self) -> int | None:
        return self.extra.get("attempts_remaining")


class NotAuthenticated(CognitoMFAError):
    code = "not_authenticated"
    status = 401
    default_detail = _("A Cognito access token is required.")


class TokenInvalid(CognitoMFAError):
    code = "token_invalid"
    status = 401
    default_detail = _("The access token is not valid.")


class AccountUnavailable(CognitoMFAError):
    """The token is valid, but its Cognito user has no usable account on this site: the bound
    account is inactive, or none may be bound (DRF refuses inactive users alike)."""

    code = "account_unavailable"
    status = 401
    default_detail = _("This sign-in has no usable account on this site.")


class ReauthenticationRequired(CognitoMFAError):
    code = "reauthentication_required"
    status = 401
    default_detail = _("Sign in again to change your authenticator.")


class NotFound(CognitoMFAError):
    code = "not_found"
    status = 404
    default_detail = _("Not found.")


class EnrollmentLocked(CognitoMFAError):
    code = "enrollment_locked"
    status = 409
    default_detail = _("Too many wrong codes. Start a new enrollment.")


class EnrollmentNotPending(CognitoMFAError):
    code = "enrollment_not_pending"
    status = 409
    default_detail = _("This enrollment is no longer pending.")


class EnrollmentExpired(CognitoMFAError):
    code = "enrollment_expired"
    status = 410
    default_detail = _("This enrollment has expired. Start a new one.")


class RequestTooLarge(CognitoMFAError):
    """The body is larger than the site's ``DATA_UPLOAD_MAX_MEMORY_SIZE``: nothing was read."""

    code = "request_too_large"
    status = 413
    default_detail = _("The request body is too large.")


class Throttled(CognitoMFAError):
    code = "throttled"
    status = 429
    default_detail = _("Too many attempts. Try again later.")

    def __init__(
        self, detail: Any = None, *, retry_after: int = 1, reset_required: bool = False
    ) -> None:
        # reset_required: waiting will not help (the hard limit); only an admin reset does.
        super().__init__(detail, **({"reset_required": True} if reset_required else {}))
        self.retry_after = max(1, int(retry_after))


class CallBudgetExhausted(Throttled):
    """The site's budget of Cognito calls is spent for now; nothing was sent to Cognito."""

    default_detail = _(
        "Many people are setting up MFA right now. Nothing was changed; try again in a moment."
    )

    def __init__(self, detail: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(detail, retry_after=retry_after)


class CognitoUnavailable(CognitoMFAError):
    code = "cognito_unavailable"
    status = 503
    default_detail = _("The MFA service is unavailable. Nothing was changed; try again shortly.")

    def __init__(self, detail: Any = None, *, retry_after: int = 5) -> None:
        super().__init__(detail)
        self.retry_after = max(1, int(retry_after))


class CognitoConfigurationError(CognitoMFAError):
    """Cognito refused the call for a reason an operator must fix (logged, never echoed)."""

    code = "cognito_error"
    status = 502
    default_detail = _("The MFA service refused the request. The site operator has been notified.")


class CredentialRejected(CognitoMFAError):
    """Cognito rejected the access token or Session it was given (expired, revoked, used)."""

    code = "token_invalid"
    status = 401
    default_detail = _("Cognito no longer accepts this sign-in. Sign in again.")


class SoftwareTokenMissing(CognitoMFAError):
    """The user has no verified software token, so TOTP cannot be turned on."""

    code = "invalid"
    status = 400
    default_detail = _("No verified authenticator: enroll one before turning TOTP on.")

    def __init__(self, detail: Any = None, **extra: Any) -> None:
        super().__init__(detail, **extra)
        # Like every ``invalid``, the field at fault is named: here ``enabled``.
        self.extra.setdefault("fields", {"enabled": [str(self.detail)]})


class CognitoUserNotFound(CognitoMFAError):
    code = "not_found"
    status = 404
    default_detail = _("The Cognito user does not exist.")
