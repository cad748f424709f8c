"""The error hierarchy of cognito_mfa, and the one table of its words.

Every error has a stable ``code`` (public API, see the error table of docs/api.md) and, on its
class, the HTTP status the REST API answers with. The same code travels into API responses,
signals, audit rows and admin messages. :data:`ERROR_TEXTS` holds, per code, what each reader
is told: the user (the API's ``detail``), the help desk (the admin's message) and the API's
documentation (when the code is answered; the OpenAPI schema reads it with the statuses). A
class that shares a code but names a narrower cause (``CredentialRejected`` for
``token_invalid``) states its own ``detail`` beside that cause.

The texts for people are translated lazily (in the language of the request that sees them);
the ``code`` never is, nor the documentation's words. Apart from ``gettext``, which needs no
configured settings, this module imports nothing from Django or DRF, so flows, commands and
the Cognito boundary can raise these errors anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class ErrorTexts:
    """The words of one error code."""

    detail: Any
    """What the user reads: the API's ``detail`` (lazily translated)."""
    when: str | None
    """When the API answers the code, for its documentation; None: never an API answer."""
    help_desk: Any = None
    """What the admin tells the help desk; None: the generic message naming the code."""


ERROR_TEXTS: dict[str, ErrorTexts] = {
    "error": ErrorTexts(_("The request could not be completed."), None),
    "invalid": ErrorTexts(
        _("The request body is not valid."),
        "The body is malformed (field errors under `fields`).",
        _("The request was not valid."),
    ),
    "invalid_code": ErrorTexts(
        _("The code was not accepted. Check the authenticator app and try again."),
        "Cognito rejected the code; `attempts_remaining` says how many tries are left.",
        _("The code was not accepted."),
    ),
    "not_authenticated": ErrorTexts(
        _("A Cognito access token is required."), "No access token was sent."
    ),
    "token_invalid": ErrorTexts(
        _("The access token is not valid."),
        "The access token (or the sign-in Session) is not valid.",
        _("Cognito no longer accepts the stored sign-in of this user."),
    ),
    "account_unavailable": ErrorTexts(
        _("This sign-in has no usable account on this site."),
        "The token is valid, but its Cognito user has no usable account on this site "
        "(deactivated, or none may be bound).",
    ),
    "reauthentication_required": ErrorTexts(
        _("Sign in again to change your authenticator."),
        "The sign-in (`auth_time`) is older than COGNITO_MFA_REAUTH_MAX_AGE: sign in again.",
    ),
    "not_found": ErrorTexts(
        # A context of its own: DRF's catalogue, listed before ours, translates "Not found.".
        pgettext_lazy("error detail", "Not found."),
        "Unknown id, another user's id (same answer), or no such Cognito user.",
        _("The Cognito user does not exist."),
    ),
    "method_not_allowed": ErrorTexts(
        _("This method is not allowed here."), "The endpoint does not take this HTTP method."
    ),
    "not_acceptable": ErrorTexts(
        _("Only application/json can be answered."), "The `Accept` header excludes JSON."
    ),
    "enrollment_locked": ErrorTexts(
        _("Too many wrong codes. Start a new enrollment."),
        "Too many wrong codes: start a new enrollment.",
        _("Too many wrong codes: the enrollment is locked."),
    ),
    "enrollment_not_pending": ErrorTexts(
        _("This enrollment is no longer pending."),
        "Already verified or cancelled, or a verify is running.",
        _("The enrollment is no longer pending."),
    ),
    "enrollment_expired": ErrorTexts(
        _("This enrollment has expired. Start a new one."),
        "Past `expires_at`, or Cognito no longer accepts its credential.",
        _("The enrollment has expired: the user has to start a new one."),
    ),
    "request_too_large": ErrorTexts(
        _("The request body is too large."),
        "The body is larger than the site's DATA_UPLOAD_MAX_MEMORY_SIZE; nothing changed.",
    ),
    "unsupported_media_type": ErrorTexts(
        _("Send the body as application/json."), "The body is not `application/json`."
    ),
    "throttled": ErrorTexts(
        _("Too many attempts. Try again later."),
        "Rate limit or wrong-code back-off; see the `Retry-After` header. With "
        "`reset_required: true` (COGNITO_MFA_FAILURE_HARD_LIMIT reached) waiting does not "
        "help: only the help desk's reset does.",
        _("Too many attempts for this user. Try again later."),
    ),
    "cognito_error": ErrorTexts(
        _("The MFA service refused the request. The site operator has been notified."),
        "Cognito refused for a configuration reason (logged).",
        _("Cognito refused the request; see the server log for the reason."),
    ),
    "cognito_unavailable": ErrorTexts(
        _("The MFA service is unavailable. Nothing was changed; try again shortly."),
        "Cognito is down, timing out or throttling; nothing changed. See `Retry-After`.",
        _("Cognito is unavailable. Nothing was changed; try again shortly."),
    ),
}


def help_desk_message(code: str) -> str:
    """Return what the admin tells the help desk about error ``code``, in the active language
    (a code without words of its own is named in a generic message)."""
    message = ERROR_TEXTS.get(code, ERROR_TEXTS["error"]).help_desk
    if message is None:
        return gettext("The request failed (%(code)s).") % {"code": code}
    return str(message)


def error_status(code: str) -> int:
    """Return the HTTP status the API answers error ``code`` with (from its classes)."""
    pending = [CognitoMFAError]
    while pending:
        error_class = pending.pop()
        if error_class.code == code:
            return error_class.status
        pending.extend(error_class.__subclasses__())
    raise KeyError(code)


class CognitoMFAError(Exception):
    """Base class: every error the app raises on purpose."""

    code = "error"
    status = 500
    default_detail: Any = ERROR_TEXTS["error"].detail

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A class that names a code takes the code's words, unless it says more of its own; one
        # that only narrows its parent (CallBudgetExhausted) keeps the parent's.
        if (
            "code" in cls.__dict__
            and "default_detail" not in cls.__dict__
            and cls.code in ERROR_TEXTS
        ):
            cls.default_detail = ERROR_TEXTS[cls.code].detail

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


class InvalidCode(CognitoMFAError):
    code = "invalid_code"
    status = 400

    def __init__(self, detail: Any = None, *, attempts_remaining: int | None = None) -> None:
        super().__init__(detail, attempts_remaining=attempts_remaining)

    @property
    def attempts_remaining(self) -> int | None:
        return self.extra.get("attempts_remaining")


class NotAuthenticated(CognitoMFAError):
    code = "not_authenticated"
    status = 401


class TokenInvalid(CognitoMFAError):
    code = "token_invalid"
    status = 401


class AccountUnavailable(CognitoMFAError):
    """The token is valid, but its Cognito user has no usable account on this site: the bound
    account is inactive, or none may be bound (DRF refuses inactive users alike)."""

    code = "account_unavailable"
    status = 401


class ReauthenticationRequired(CognitoMFAError):
    code = "reauthentication_required"
    status = 401


class NotFound(CognitoMFAError):
    code = "not_found"
    status = 404


class EnrollmentLocked(CognitoMFAError):
    code = "enrollment_locked"
    status = 409


class EnrollmentNotPending(CognitoMFAError):
    code = "enrollment_not_pending"
    status = 409


class EnrollmentExpired(CognitoMFAError):
    code = "enrollment_expired"
    status = 410


class RequestTooLarge(CognitoMFAError):
    """The body is larger than the site's ``DATA_UPLOAD_MAX_MEMORY_SIZE``: nothing was read."""

    code = "request_too_large"
    status = 413


class Throttled(CognitoMFAError):
    code = "throttled"
    status = 429

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

    def __init__(self, detail: Any = None, *, retry_after: int = 5) -> None:
        super().__init__(detail)
        self.retry_after = max(1, int(retry_after))


class CognitoConfigurationError(CognitoMFAError):
    """Cognito refused the call for a reason an operator must fix (logged, never echoed)."""

    code = "cognito_error"
    status = 502


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


class MethodNotAllowed(CognitoMFAError):
    """DRF's 405, answered with the app's code and words (DRF's quote the method back)."""

    code = "method_not_allowed"
    status = 405


class NotAcceptable(CognitoMFAError):
    """DRF's 406: the ``Accept`` header excludes JSON."""

    code = "not_acceptable"
    status = 406


class UnsupportedMediaType(CognitoMFAError):
    """DRF's 415 (DRF's words would quote the content type back)."""

    code = "unsupported_media_type"
    status = 415
