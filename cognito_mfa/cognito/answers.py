"""Cognito's answers, read into the app's results.

botocore does not check the types of an answer: every field is checked here, and an answer
of the wrong shape (a proxy's page, a changed API) is a 502 ``cognito_error``, never a
``KeyError`` or a wrong value handed on.
"""

from __future__ import annotations

import ast
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from django.views.decorators.debug import sensitive_variables

from .. import exceptions as exc

# The whole boundary logs as one logger, "cognito_mfa.cognito", whichever module speaks.
logger = logging.getLogger(__package__)


@dataclass(frozen=True)
class AssociateResult:
    secret_code: str = field(repr=False)
    session: str | None = field(repr=False)


@dataclass(frozen=True)
class VerifyResult:
    session: str | None = field(repr=False)


@dataclass(frozen=True)
class RawVerifyResponse:
    """``VerifySoftwareToken``'s answer as Cognito gave it (the AWS CLI mirror prints it).

    ``error_code`` is Cognito's error code when it refused the call; its message is never kept
    (it can contain the token).
    """

    status: str | None
    session: str | None
    error_code: str | None = None


@dataclass(frozen=True)
class MFAState:
    """A user's MFA settings as Cognito reports them."""

    software_token_mfa_enabled: bool
    preferred_mfa: str | None
    mfa_methods: tuple[str, ...]


@dataclass(frozen=True)
class AuthStep:
    """The outcome of a sign-in step: tokens, or the next challenge."""

    challenge_name: str | None
    session: str | None = field(repr=False)
    challenge_parameters: dict[str, Any] = field(repr=False)
    authentication_result: dict[str, Any] | None = field(repr=False)


def parse_mfas_can_setup(raw: Any) -> list[str]:
    """Parse ``MFAS_CAN_SETUP``: JSON from AWS, a Python repr from moto, or a list."""
    if isinstance(raw, list | tuple):
        return [str(item) for item in raw]
    if not isinstance(raw, str) or not raw.strip():
        return []
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(raw)
        except (ValueError, SyntaxError):
            continue
        if isinstance(value, list | tuple):
            return [str(item) for item in value]
    return []


def unexpected_shape(operation: str, what: str) -> exc.CognitoConfigurationError:
    """Log an answer of the wrong shape for the operator (naming the field, never its value)
    and return the error the caller raises: a 502 ``cognito_error``."""
    logger.error("Cognito %s answered in an unexpected shape: %s", operation, what)
    return exc.CognitoConfigurationError()


def answer_object(response: Any, operation: str) -> dict[str, Any]:
    """Return ``response`` if it is a JSON object; raise CognitoConfigurationError if not."""
    if not isinstance(response, dict):
        raise unexpected_shape(operation, f"the answer is a {type(response).__name__}")
    return response


def optional_text(response: dict[str, Any], key: str, operation: str) -> str | None:
    """Return the optional string ``response[key]`` (None if absent).

    Raise CognitoConfigurationError for a value that is not a string: botocore does not
    check the types of an answer.
    """
    value = response.get(key)
    if value is not None and not isinstance(value, str):
        raise unexpected_shape(operation, f"{key} is not a string")
    return value


def required_text(response: dict[str, Any], key: str, operation: str) -> str:
    """Return the string ``response[key]``; raise CognitoConfigurationError if it is missing,
    empty or not a string."""
    value = optional_text(response, key, operation)
    if not value:
        raise unexpected_shape(operation, f"{key} is missing")
    return value


@sensitive_variables("response", "result")
def read_auth_step(response: Any, operation: str) -> AuthStep:
    """Read a sign-in step (``InitiateAuth``, ``RespondToAuthChallenge``) from Cognito's answer;
    raise CognitoConfigurationError for an answer of the wrong shape."""
    response = answer_object(response, operation)
    parameters = response.get("ChallengeParameters") or {}
    if not isinstance(parameters, dict):
        raise unexpected_shape(operation, "ChallengeParameters is not an object")
    result = response.get("AuthenticationResult")
    if result is not None:
        if not isinstance(result, dict):
            raise unexpected_shape(operation, "AuthenticationResult is not an object")
        optional_text(result, "AccessToken", operation)
    return AuthStep(
        challenge_name=optional_text(response, "ChallengeName", operation),
        session=optional_text(response, "Session", operation),
        challenge_parameters=dict(parameters),
        authentication_result=result,
    )


def read_mfa_state(response: Any, operation: str) -> MFAState:
    """Read a user's MFA settings (``GetUser``, ``AdminGetUser``) from Cognito's answer."""
    response = answer_object(response, operation)
    methods = response.get("UserMFASettingList") or []
    if not isinstance(methods, list) or not all(isinstance(item, str) for item in methods):
        raise unexpected_shape(operation, "UserMFASettingList is not a list of strings")
    return MFAState(
        software_token_mfa_enabled="SOFTWARE_TOKEN_MFA" in methods,
        preferred_mfa=optional_text(response, "PreferredMfaSetting", operation) or None,
        mfa_methods=tuple(methods),
    )


class _Fields:
    """The fields of ``operation``'s answer, each string read with its type checked."""

    def __init__(self, response: Any, operation: str) -> None:
        self.answer = answer_object(response, operation)
        self.operation = operation

    def optional(self, key: str) -> str | None:
        return optional_text(self.answer, key, self.operation)

    def required(self, key: str) -> str:
        return required_text(self.answer, key, self.operation)


# The answers below hold secrets, Sessions and codes: error reports hide these locals.
@sensitive_variables("response", "fields")
def read_verify_result(response: Any) -> VerifyResult:
    """Read ``VerifySoftwareToken``'s answer; raise InvalidCode unless it is ``SUCCESS``."""
    fields = _Fields(response, "VerifySoftwareToken")
    if fields.required("Status") != "SUCCESS":
        # Fail closed: anything but SUCCESS (Cognito's other status is ERROR) is a rejected
        # code. An answer without a Status (a proxy's page) is not the user's doing: 502.
        raise exc.InvalidCode()
    return VerifyResult(session=fields.optional("Session"))


@sensitive_variables("response", "fields")
def read_associate_result(response: Any) -> AssociateResult:
    """Read ``AssociateSoftwareToken``'s answer: the secret (show once, never store)."""
    fields = _Fields(response, "AssociateSoftwareToken")
    return AssociateResult(
        secret_code=fields.required("SecretCode"), session=fields.optional("Session")
    )


@sensitive_variables("response", "fields")
def read_raw_verify_response(response: Any) -> RawVerifyResponse:
    """Read ``VerifySoftwareToken``'s answer as it is, for the AWS CLI mirror."""
    fields = _Fields(response, "VerifySoftwareToken")
    return RawVerifyResponse(status=fields.optional("Status"), session=fields.optional("Session"))
