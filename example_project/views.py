"""The example site's own views: the single-page app and a minimal Cognito sign-in.

cognito_mfa itself has no sign-in: a real site signs users in with the Amplify libraries or
the Hosted UI. These two endpoints stand in for that so the page can obtain an access token
and meet the ``NEW_PASSWORD_REQUIRED``, ``MFA_SETUP`` and ``SOFTWARE_TOKEN_MFA`` challenges.
Tokens go back in the response body only; nothing is stored server-side.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST

from cognito_mfa import exceptions as exc
from cognito_mfa.cognito import AuthStep, get_client, parse_mfas_can_setup
from cognito_mfa.conf import app_settings

from . import sign_in as cognito_sign_in

MAX_FIELD_LENGTH = 256
# Challenges the page can answer; anything else (SMS, e-mail OTP) is outside this demo.
SUPPORTED_CHALLENGES = ("NEW_PASSWORD_REQUIRED", "MFA_SETUP", "SOFTWARE_TOKEN_MFA")
# The page's scripts, styles and images come from this site only (QR codes are data: URIs).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


@require_GET
@ensure_csrf_cookie
def index(request: HttpRequest) -> HttpResponse:
    """Serve the single-page app."""
    response = render(request, "example_project/index.html")
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


def _error(code: str, detail: str, status: int, **extra: Any) -> JsonResponse:
    return JsonResponse({"code": code, "detail": detail, **extra}, status=status)


def _from_exception(error: exc.CognitoMFAError) -> JsonResponse:
    response = JsonResponse(error.as_dict(), status=error.status)
    retry_after = getattr(error, "retry_after", None)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


class BadRequest(Exception):
    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__("invalid")
        self.fields = fields


def _body(request: HttpRequest, *required: str) -> dict[str, str]:
    try:
        data = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest({"non_field_errors": ["The request body is not valid JSON."]}) from None
    if not isinstance(data, dict):
        raise BadRequest({"non_field_errors": ["Send a JSON object."]})
    fields: dict[str, list[str]] = {}
    values: dict[str, str] = {}
    for name in required:
        value = data.get(name)
        if not isinstance(value, str) or not value:
            fields[name] = ["This field is required."]
        elif len(value) > MAX_FIELD_LENGTH:
            fields[name] = ["This value is too long."]
        else:
            values[name] = value
    if fields:
        raise BadRequest(fields)
    return values


def _client_id() -> str:
    ids = app_settings.APP_CLIENT_IDS
    return ids[0] if ids else ""


def _step_response(step: AuthStep, username: str) -> JsonResponse:
    if step.authentication_result:
        return JsonResponse(
            {
                "status": "signed_in",
                "username": username,
                "access_token": step.authentication_result.get("AccessToken"),
                "expires_in": step.authentication_result.get("ExpiresIn"),
            }
        )
    if step.challenge_name not in SUPPORTED_CHALLENGES:
        return _error(
            "unsupported_challenge",
            "This pool asks for a sign-in step the example site does not handle.",
            400,
            challenge_name=step.challenge_name,
        )
    parameters = step.challenge_parameters
    payload: dict[str, Any] = {
        "status": "challenge",
        "challenge_name": step.challenge_name,
        "session": step.session,
        # Cognito may have resolved an alias (e-mail) to the real username.
        "username": parameters.get("USER_ID_FOR_SRP") or parameters.get("USERNAME") or username,
    }
    if step.challenge_name == "MFA_SETUP":
        payload["mfas_can_setup"] = parse_mfas_can_setup(parameters.get("MFAS_CAN_SETUP"))
    return JsonResponse(payload)


@require_POST
@never_cache
def sign_in(request: HttpRequest) -> JsonResponse:
    """``POST /demo/sign-in/`` ``{username, password}``: tokens or the next challenge."""
    try:
        body = _body(request, "username", "password")
    except BadRequest as error:
        return _error("invalid", "The request body is not valid.", 400, fields=error.fields)
    try:
        step = cognito_sign_in.initiate_password_auth(
            username=body["username"], password=body["password"], client_id=_client_id()
        )
    except (exc.CredentialRejected, exc.CognitoUserNotFound):
        # One answer for a wrong password and an unknown user: no account enumeration.
        return _error("sign_in_failed", "Incorrect username or password.", 401)
    except exc.CognitoMFAError as error:
        return _from_exception(error)
    return _step_response(step, body["username"])


@require_POST
@never_cache
def respond(request: HttpRequest) -> JsonResponse:
    """``POST /demo/respond/`` ``{challenge_name, session, username, ...}``: the next step.

    ``NEW_PASSWORD_REQUIRED`` takes ``new_password``, ``SOFTWARE_TOKEN_MFA`` takes ``code``;
    ``MFA_SETUP`` needs nothing more once the device was verified through the REST API.
    """
    try:
        body = _body(request, "challenge_name", "session", "username")
        name = body["challenge_name"]
        if name == "NEW_PASSWORD_REQUIRED":
            extra = _body(request, "new_password")
            responses = {"USERNAME": body["username"], "NEW_PASSWORD": extra["new_password"]}
        elif name == "SOFTWARE_TOKEN_MFA":
            extra = _body(request, "code")
            responses = {"USERNAME": body["username"], "SOFTWARE_TOKEN_MFA_CODE": extra["code"]}
        elif name != "MFA_SETUP":
            raise BadRequest({"challenge_name": ["This challenge is not supported here."]})
    except BadRequest as error:
        return _error("invalid", "The request body is not valid.", 400, fields=error.fields)
    try:
        if name == "MFA_SETUP":
            step = get_client().respond_to_mfa_setup(
                username=body["username"], session=body["session"], client_id=_client_id()
            )
        else:
            step = cognito_sign_in.respond_to_challenge(
                client_id=_client_id(),
                challenge_name=name,
                session=body["session"],
                responses=responses,
            )
    except exc.CredentialRejected:
        return _error(
            "session_expired", "This sign-in took too long or was already used. Sign in again.", 401
        )
    except exc.InvalidInput:
        # Cognito's InvalidPasswordException: the new password breaks the pool's policy.
        return _error(
            "invalid",
            "Cognito did not accept the new password.",
            400,
            fields={"new_password": ["It does not meet the user pool's password policy."]},
        )
    except exc.CognitoMFAError as error:
        return _from_exception(error)
    return _step_response(step, body["username"])
