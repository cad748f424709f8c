"""The boundary's error map: what each botocore error means to the app.

Every error a Cognito call raises becomes one of :mod:`cognito_mfa.exceptions` here, in one
place. Cognito's own error messages are never passed on (they can contain whole tokens); only
the error code, or the exception's class, is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import botocore.exceptions

from .. import exceptions as exc
from ..conf import app_settings

# The whole boundary logs as one logger, "cognito_mfa.cognito", whichever module speaks.
logger = logging.getLogger(__package__)

# Cognito error code -> our exception. A code missing here is an operator problem.
ERROR_MAP: dict[str, type[exc.CognitoMFAError]] = {
    # the user's code was wrong (AWS says EnableSoftwareTokenMFA..., moto CodeMismatch...)
    "EnableSoftwareTokenMFAException": exc.InvalidCode,
    "CodeMismatchException": exc.InvalidCode,
    "ExpiredCodeException": exc.InvalidCode,
    # the access token or Session is expired, revoked or already used
    "NotAuthorizedException": exc.CredentialRejected,
    # the user has no verified token, so TOTP cannot be enabled
    "SoftwareTokenMFANotFoundException": exc.SoftwareTokenMissing,
    "UserNotFoundException": exc.CognitoUserNotFound,
    # a NEW_PASSWORD_REQUIRED answer whose password breaks the pool's policy
    "InvalidPasswordException": exc.InvalidInput,
    # Cognito is busy or failing: nothing changed, try later
    "TooManyRequestsException": exc.CognitoUnavailable,
    "LimitExceededException": exc.CognitoUnavailable,
    "InternalErrorException": exc.CognitoUnavailable,
    "ServiceUnavailable": exc.CognitoUnavailable,
    "ServiceUnavailableException": exc.CognitoUnavailable,
    "ThrottlingException": exc.CognitoUnavailable,
    "RequestTimeout": exc.CognitoUnavailable,
    "RequestTimeoutException": exc.CognitoUnavailable,
}

# Overrides of ERROR_MAP for calls authorised by a challenge Session: a Session Cognito no
# longer knows (used up by RespondToAuthChallenge, or past its life) can come back as
# ResourceNotFoundException, which then is the caller's credential, not an operator problem.
SESSION_ERROR_MAP: dict[str, type[exc.CognitoMFAError]] = {
    "ResourceNotFoundException": exc.CredentialRejected,
}

# Overrides for SetUserMFAPreference turning TOTP on: Cognito answers InvalidParameterException
# ("User has not set up / verified software token mfa") when there is no verified token.
ENABLE_TOTP_ERROR_MAP: dict[str, type[exc.CognitoMFAError]] = {
    "InvalidParameterException": exc.SoftwareTokenMissing,
}

# Cognito's answers to a call past the account's request rate quota.
THROTTLING_CODES = frozenset({"TooManyRequestsException", "ThrottlingException"})

# The request never got an answer: Cognito, or the way to it, is unreachable.
TRANSPORT_ERRORS = (
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.HTTPClientError,
)


def error_code(error: botocore.exceptions.ClientError) -> str:
    """Return the error code of a call Cognito refused ("Unknown" if the answer names none)."""
    return error.response.get("Error", {}).get("Code", "Unknown")


def is_throttled(error: Exception) -> bool:
    """Tell whether ``error`` is Cognito refusing a call past the request rate quota."""
    return (
        isinstance(error, botocore.exceptions.ClientError) and error_code(error) in THROTTLING_CODES
    )


def _unmapped_error(error: botocore.exceptions.ClientError) -> type[exc.CognitoMFAError]:
    """Classify an answer whose error code ERROR_MAP does not know, by its HTTP status.

    A 5xx without an AWS error type (an empty body, a load balancer's or VPC endpoint's own
    HTML or text page) reaches us named by its status, "503": Cognito or the path to it is
    down, nothing changed, the caller may retry. Any other unknown code, a proxy's 4xx page
    among them, is something the operator must look at.
    """
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if isinstance(status, int) and 500 <= status <= 599:
        return exc.CognitoUnavailable
    return exc.CognitoConfigurationError


def _unavailable() -> exc.CognitoUnavailable:
    return exc.CognitoUnavailable(retry_after=app_settings.UNAVAILABLE_RETRY_AFTER)


def translate(operation: str, error: Exception) -> exc.CognitoMFAError:
    """Return the app's error for what the call ``operation`` raised, logged for the operator.

    A refusal by Cognito goes through ERROR_MAP; an unreachable Cognito is unavailable (the
    caller may retry); missing credentials and anything botocore could not make sense of
    are configuration errors.
    """
    if isinstance(error, botocore.exceptions.ClientError):
        code = error_code(error)
        mapped = ERROR_MAP.get(code) or _unmapped_error(error)
        log = logger.error if mapped is exc.CognitoConfigurationError else logger.info
        log("Cognito %s failed with %s", operation, code)
        return _unavailable() if mapped is exc.CognitoUnavailable else mapped()
    if isinstance(error, TRANSPORT_ERRORS):
        logger.warning("Cognito %s unreachable: %s", operation, type(error).__name__)
        return _unavailable()
    if isinstance(error, botocore.exceptions.NoCredentialsError):
        logger.error("Cognito %s needs AWS credentials and none are configured", operation)
    elif isinstance(error, botocore.exceptions.BotoCoreError):
        logger.error("Cognito %s failed: %s", operation, type(error).__name__)
    else:
        # botocore could not read the answer (a JSON array or ``null`` from a proxy, say):
        # nothing is known to have changed, and it is not the caller's fault. Only the
        # exception's class is logged; its text may quote the answer.
        logger.error(
            "Cognito %s answered something unreadable: %s", operation, type(error).__name__
        )
    return exc.CognitoConfigurationError()


@contextmanager
def overridden_errors(
    operation: str, overrides: dict[str, type[exc.CognitoMFAError]]
) -> Iterator[None]:
    """Map error codes whose meaning depends on the call, before the general mapping."""
    try:
        yield
    except botocore.exceptions.ClientError as error:
        code = error_code(error)
        if code not in overrides:
            raise
        logger.info("Cognito %s failed with %s", operation, code)
        raise overrides[code]() from None
