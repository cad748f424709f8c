"""OpenAPI descriptions of the REST API, for hosts that use drf-spectacular.

drf-spectacular is an optional extra (``cognito-mfa[schema]``): without it, :func:`document`
leaves the views as they are and nothing here is imported from it. With it, every operation
states its request and response shapes and every error status with its stable codes, and the
bearer authentication is described as an ``http``/``bearer`` security scheme.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from . import exceptions as exc
from .serializers import ErrorSerializer

F = TypeVar("F", bound=Callable[..., Any])

try:
    from drf_spectacular.extensions import (
        OpenApiAuthenticationExtension,
        OpenApiSerializerFieldExtension,
    )
    from drf_spectacular.types import OpenApiTypes
    from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
except ImportError:  # the optional extra is not installed: describe nothing
    HAS_SPECTACULAR = False
else:
    HAS_SPECTACULAR = True

TAG = "cognito-mfa"

# Every error code the API answers with: its HTTP status (on the exception classes) and when
# it is answered (the error table's words for the docs). Public API, see docs/api.md.
ERRORS: dict[str, tuple[int, str]] = {
    code: (exc.error_status(code), texts.when)
    for code, texts in exc.ERROR_TEXTS.items()
    if texts.when is not None
}

# What any bearer-authenticated operation can answer, whatever it does.
AUTHENTICATED = (
    "not_authenticated",
    "token_invalid",
    "account_unavailable",
    "cognito_unavailable",
)


def error_responses(*codes: str) -> dict[int, Any]:
    """Return ``{status: OpenApiResponse}`` for ``codes``, one entry per status."""
    by_status: dict[int, list[str]] = {}
    for code in dict.fromkeys(codes):
        status, _ = ERRORS[code]
        by_status.setdefault(status, []).append(code)
    return {
        status: OpenApiResponse(
            response=ErrorSerializer,
            description="\n".join(f"- `{code}`: {ERRORS[code][1]}" for code in status_codes),
        )
        for status, status_codes in sorted(by_status.items())
    }


def document(
    *,
    operation_id: str,
    summary: str,
    responses: dict[int, Any],
    errors: Sequence[str] = (),
    request: Any = None,
    enrollment_id: bool = False,
    description: str = "",
) -> Callable[[F], F]:
    """Describe one operation: success shapes, error statuses with their codes.

    A no-op decorator when drf-spectacular is not installed.
    """
    if not HAS_SPECTACULAR:

        def unchanged(view: F) -> F:
            return view

        return unchanged

    parameters = []
    if enrollment_id:
        parameters.append(
            OpenApiParameter(
                "enrollment_id",
                OpenApiTypes.UUID,
                OpenApiParameter.PATH,
                description="The enrollment's id.",
            )
        )
    all_responses = {
        status: response
        if response is None or isinstance(response, OpenApiResponse)
        # A serializer or a bare description both become a response object.
        else OpenApiResponse(response=response)
        for status, response in responses.items()
    }
    # Every operation negotiates its answer (406 when Accept excludes JSON), and every one
    # that takes a body parses it (415 when it is not JSON); a 405 belongs to the methods an
    # endpoint does not list, so no operation carries it.
    negotiated = (
        ("not_acceptable",) if request is None else ("not_acceptable", "unsupported_media_type")
    )
    all_responses.update(error_responses(*errors, *negotiated))
    return extend_schema(
        operation_id=operation_id,
        summary=summary,
        description=description or None,
        request=request,
        responses=all_responses,
        parameters=parameters or None,
        tags=[TAG],
    )


if HAS_SPECTACULAR:

    class CognitoAccessTokenScheme(OpenApiAuthenticationExtension):
        """Describe ``Authorization: Bearer <Cognito access token>``."""

        target_class = "cognito_mfa.authentication.CognitoAccessTokenAuthentication"
        name = "CognitoAccessToken"

        def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
            return {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": (
                    "A Cognito access token of the user pool (RS256, token_use=access, an "
                    "allowed client id). A host that signs users in itself may send it in "
                    "`X-Cognito-Access-Token` instead; it must belong to the signed-in user."
                ),
            }

    class UserCodeFieldSchema(OpenApiSerializerFieldExtension):
        """The 6-digit code: a string of exactly six ASCII digits."""

        target_class = "cognito_mfa.serializers.UserCodeField"

        def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
            return {"type": "string", "pattern": "^[0-9]{6}$", "example": "123456"}

    class DeviceNameFieldSchema(OpenApiSerializerFieldExtension):
        """A device name: up to 128 characters, no control characters."""

        target_class = "cognito_mfa.serializers.DeviceNameField"

        def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
            return {
                "type": "string",
                "maxLength": 128,
                "pattern": "^[^\\x00-\\x1f\\x7f]*$",
                "description": "Shown in the user's Cognito MFA settings.",
            }

    class CognitoUsernameFieldSchema(OpenApiSerializerFieldExtension):
        """A Cognito username: no spaces, no control characters."""

        target_class = "cognito_mfa.serializers.CognitoUsernameField"

        def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
            return {
                "type": "string",
                "minLength": 1,
                "maxLength": 128,
                "pattern": "^[^\\s\\x00-\\x1f\\x7f]+$",
            }
