"""Thin DRF views: validate the body, call one flow, shape the response."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import transaction
from django.http import Http404
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_variables
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import exceptions as exc
from . import flows, serializers
from .authentication import CognitoAccessTokenAuthentication
from .budget import admissions
from .models import Enrollment
from .otpauth import render_qr
from .parsers import JSONParser
from .schema import AUTHENTICATED, document
from .throttling import (
    CallBudgetThrottle,
    ChallengeThrottle,
    PreferenceThrottle,
    StartBudgetThrottle,
    StartThrottle,
    StatusThrottle,
    VerifyBudgetThrottle,
    VerifyThrottle,
)
from .tokens import AccessToken

MAX_LISTED_ENROLLMENTS = 50
# What a verify can answer besides authentication errors (for the OpenAPI schema).
VERIFY_ERRORS = (
    "invalid",
    "request_too_large",
    "invalid_code",
    "not_found",
    "enrollment_locked",
    "enrollment_not_pending",
    "enrollment_expired",
    "throttled",
    "cognito_error",
)


def _error_response(error: exc.CognitoMFAError) -> Response:
    response = Response(error.as_dict(), status=error.status)
    retry_after = getattr(error, "retry_after", None)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    if error.status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="cognito_mfa"'
    return response


# DRF's protocol errors (405, 406, 415) as the app's errors: their codes and words are the
# error table's. DRF's own detail quotes the client's method or content type back.
PROTOCOL_ERRORS: dict[type[drf_exceptions.APIException], type[exc.CognitoMFAError]] = {
    drf_exceptions.MethodNotAllowed: exc.MethodNotAllowed,
    drf_exceptions.NotAcceptable: exc.NotAcceptable,
    drf_exceptions.UnsupportedMediaType: exc.UnsupportedMediaType,
}


def exception_handler(error: Exception, context: dict[str, Any]) -> Response | None:
    """Turn every expected error into ``{"code", "detail", ...}`` with a stable code."""
    if isinstance(error, exc.CognitoMFAError):
        return _error_response(error)
    if isinstance(error, drf_exceptions.ValidationError):
        fields = (
            error.detail if isinstance(error.detail, dict) else {"non_field_errors": error.detail}
        )
        return Response(
            {"code": "invalid", "detail": str(exc.InvalidInput.default_detail), "fields": fields},
            status=400,
        )
    if isinstance(error, RequestDataTooBig):
        # Django's own answer would be its HTML 400 page.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return _error_response(
            exc.RequestTooLarge(
                _("The request body is larger than the %(limit)d bytes accepted.")
                % {"limit": limit}
            )
        )
    if isinstance(error, drf_exceptions.ParseError):
        return _error_response(exc.InvalidInput(_("The request body is not valid JSON.")))
    if isinstance(error, drf_exceptions.NotAuthenticated):
        return _error_response(exc.NotAuthenticated())
    if isinstance(error, drf_exceptions.AuthenticationFailed):
        return _error_response(exc.TokenInvalid())
    if isinstance(error, drf_exceptions.Throttled):
        wait = getattr(error, "wait", None) or 1
        return _error_response(exc.Throttled(retry_after=int(wait) + 1))
    if isinstance(error, Http404 | drf_exceptions.NotFound):
        return _error_response(exc.NotFound())
    for kind, ours in PROTOCOL_ERRORS.items():
        if isinstance(error, kind):
            return _error_response(ours())
    if isinstance(error, drf_exceptions.APIException):
        code = error.get_codes()
        return Response(
            {"code": code if isinstance(code, str) else "error", "detail": str(error.detail)},
            status=error.status_code,
        )
    return None


class CognitoMFAView(APIView):
    """Base view: Cognito bearer tokens, JSON only, no caching, stable error codes."""

    authentication_classes = [CognitoAccessTokenAuthentication]
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]
    throttle_classes: list[type] = []
    # The Cognito call budget its call draws on, if it makes one: see perform_authentication.
    call_budget: type[CallBudgetThrottle] | None = None
    call_budget_unasked: CallBudgetThrottle | None = None
    # Each method's body serializer. The body is validated before the throttles count the
    # request (check_throttles): bad input (400, 415) spends none of the caller's allowance.
    body_serializers: dict[str, type[serializers.serializers.Serializer]] = {}
    valid_body: dict[str, Any]
    source = "api"

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        # Never inside ATOMIC_REQUESTS: flows commit the verify lease before calling Cognito,
        # and a request-wide transaction would hold its row lock across that call.
        return transaction.non_atomic_requests(super().as_view(**initkwargs))

    def get_exception_handler(self) -> Any:
        return exception_handler

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        # The call budget's admission (perform_authentication) holds the slot of the request's
        # Cognito call until the call is made; a slot the request did not use is given back.
        with admissions():
            return super().dispatch(request, *args, **kwargs)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        if request.method == "POST":
            # Read the body first: Django refuses one over DATA_UPLOAD_MAX_MEMORY_SIZE here,
            # before authentication, throttles or any Cognito call could act on the request.
            request.body  # noqa: B018
        super().initial(request, *args, **kwargs)

    def get_call_budget(self) -> CallBudgetThrottle | None:
        return self.call_budget() if self.call_budget is not None else None

    def perform_authentication(self, request: Request) -> None:
        # Ask the call budget once the token is known valid but before any user is read: in a
        # storm most requests are refused here, and a refusal then costs no database query.
        # A request without valid credentials still gets its 401 first, from DRF below.
        budget = self.get_call_budget()
        if budget is not None and self.credentials_hold_before_any_user(request):
            budget.allow_request(request, self)
        else:
            self.call_budget_unasked = budget  # a view instance serves one request
        super().perform_authentication(request)

    def check_throttles(self, request: Request) -> None:
        # Credentials that hold only once a user is read (the host's session with
        # X-Cognito-Access-Token, a test's forced authentication): the budget is asked here,
        # after authentication and permissions, still ahead of the per-user throttles.
        if self.call_budget_unasked is not None:
            self.call_budget_unasked.allow_request(request, self)
        serializer_class = self.body_serializers.get(request.method or "")
        if serializer_class is not None:
            self.valid_body = self.validated(serializer_class, request)
        super().check_throttles(request)

    @staticmethod
    def credentials_hold_before_any_user(request: Request) -> bool:
        """True if the request is known to be authenticated, or to need no authentication,
        before any user is read: a valid Bearer access token, or no authenticator at all (the
        sign-in challenge endpoints)."""
        authenticators = request.authenticators or ()
        if not authenticators:
            return True
        for authenticator in authenticators:
            if isinstance(authenticator, CognitoAccessTokenAuthentication):
                try:
                    return authenticator.presented_token(request) is not None
                except exc.TokenInvalid:
                    return False  # DRF's authentication answers its 401
        return False

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        # Responses may carry a TOTP secret or tokens: never store them anywhere.
        response["Cache-Control"] = "no-store"
        response["Pragma"] = "no-cache"
        return response

    @staticmethod
    def token(request: Request) -> AccessToken:
        if not isinstance(request.auth, AccessToken):
            raise exc.NotAuthenticated()
        return request.auth

    def context(self, request: Request) -> flows.Context:
        return flows.Context.build(self.source, request._request, actor=None)

    @staticmethod
    def validated(
        serializer_class: type[serializers.serializers.Serializer], request: Request
    ) -> dict[str, Any]:
        serializer = serializer_class(data=request.data)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    @staticmethod
    def parse_id(value: str) -> uuid.UUID:
        try:
            return uuid.UUID(value)
        except ValueError:
            raise exc.NotFound() from None

    def owned_enrollment(self, request: Request, enrollment_id: str) -> Enrollment:
        return flows.get_enrollment_for_user(request.user, self.parse_id(enrollment_id))


@sensitive_variables("started", "payload")
def _started_payload(started: flows.StartedEnrollment) -> dict[str, Any]:
    enrollment = started.enrollment
    payload: dict[str, Any] = {
        "id": str(enrollment.id),
        "status": enrollment.status,
        "secret_code": started.secret_code,
        "otpauth_uri": started.otpauth_uri,
        **render_qr(started.otpauth_uri),
        "expires_at": enrollment.expires_at,
        "friendly_device_name": enrollment.friendly_device_name,
    }
    if started.challenge_token is not None:
        payload["challenge_token"] = started.challenge_token
    return payload


class StatusView(CognitoMFAView):
    """``GET status/``: the caller's MFA state in Cognito and any pending enrollment."""

    throttle_classes = [StatusThrottle]

    @document(
        operation_id="cognito_mfa_status",
        summary="The caller's MFA state in Cognito and any pending enrollment",
        responses={200: serializers.StatusSerializer},
        errors=(*AUTHENTICATED, "not_found", "throttled", "cognito_error"),
    )
    def get(self, request: Request) -> Response:
        payload = flows.get_status(
            user=request.user, token=self.token(request), context=self.context(request)
        )
        return Response(serializers.StatusSerializer(payload).data)


class EnrollmentListView(CognitoMFAView):
    """``GET enrollments/`` lists the caller's enrollments; ``POST`` starts a new one."""

    body_serializers = {"POST": serializers.StartEnrollmentSerializer}

    def get_call_budget(self) -> CallBudgetThrottle | None:
        return StartBudgetThrottle() if self.request.method == "POST" else None

    def get_throttles(self) -> list[Any]:
        return [StartThrottle()] if self.request.method == "POST" else []

    @document(
        operation_id="cognito_mfa_enrollments_list",
        summary="The caller's enrollments, newest first (no secrets)",
        responses={200: serializers.EnrollmentSerializer(many=True)},
        errors=AUTHENTICATED,
    )
    def get(self, request: Request) -> Response:
        enrollments = Enrollment.objects.for_user(request.user).order_by("-created_at")
        data = serializers.EnrollmentSerializer(
            enrollments[:MAX_LISTED_ENROLLMENTS], many=True
        ).data
        return Response(data)

    @document(
        operation_id="cognito_mfa_enrollments_start",
        summary="Start an enrollment: a new TOTP secret, shown once",
        description="Cancels the caller's older pending enrollment. Replacing a TOTP the user "
        "already has needs a recent sign-in (COGNITO_MFA_REAUTH_MAX_AGE).",
        request=serializers.StartEnrollmentSerializer,
        responses={201: serializers.StartedEnrollmentSerializer},
        errors=(
            *AUTHENTICATED,
            "invalid",
            "request_too_large",
            "reauthentication_required",
            "not_found",
            "enrollment_not_pending",
            "throttled",
            "cognito_error",
        ),
    )
    @sensitive_variables("started")
    def post(self, request: Request) -> Response:
        body = self.valid_body
        started = flows.start_enrollment(
            self.context(request),
            user=request.user,
            token=self.token(request),
            device_name=body.get("friendly_device_name", ""),
        )
        return Response(_started_payload(started), status=status.HTTP_201_CREATED)


class EnrollmentDetailView(CognitoMFAView):
    """``GET enrollments/{id}/`` shows one enrollment; ``DELETE`` cancels a pending one."""

    @document(
        operation_id="cognito_mfa_enrollments_retrieve",
        summary="One of the caller's enrollments (no secrets)",
        responses={200: serializers.EnrollmentSerializer},
        errors=(*AUTHENTICATED, "not_found"),
        enrollment_id=True,
    )
    def get(self, request: Request, enrollment_id: str) -> Response:
        enrollment = self.owned_enrollment(request, enrollment_id)
        return Response(serializers.EnrollmentSerializer(enrollment).data)

    @document(
        operation_id="cognito_mfa_enrollments_cancel",
        summary="Cancel a pending enrollment",
        responses={204: None},
        errors=(*AUTHENTICATED, "not_found", "enrollment_not_pending"),
        enrollment_id=True,
    )
    def delete(self, request: Request, enrollment_id: str) -> Response:
        enrollment = self.owned_enrollment(request, enrollment_id)
        flows.cancel_enrollment(enrollment, self.context(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class EnrollmentVerifyView(CognitoMFAView):
    """``POST enrollments/{id}/verify/``: check the 6-digit code with Cognito."""

    call_budget = VerifyBudgetThrottle
    throttle_classes = [VerifyThrottle]
    body_serializers = {"POST": serializers.VerifyEnrollmentSerializer}

    @document(
        operation_id="cognito_mfa_enrollments_verify",
        summary="Verify the 6-digit code and turn TOTP on",
        request=serializers.VerifyEnrollmentSerializer,
        responses={200: serializers.VerifiedSerializer},
        errors=(*AUTHENTICATED, *VERIFY_ERRORS),
        enrollment_id=True,
    )
    @sensitive_variables("body", "verified")
    def post(self, request: Request, enrollment_id: str) -> Response:
        # The body was validated before any lookup: a malformed one answers 400 whatever the
        # id, so the answer to a bad body tells nothing about ids.
        body = self.valid_body
        enrollment_uuid = self.parse_id(enrollment_id)
        verified = flows.verify_own_enrollment(
            self.context(request),
            user=request.user,
            enrollment_id=enrollment_uuid,
            user_code=body["user_code"],
            device_name=body.get("friendly_device_name"),
        )
        return Response(
            {
                "id": str(verified.enrollment.id),
                "status": verified.enrollment.status,
                "mfa_enabled": verified.mfa_enabled,
                "preferred": verified.preferred,
            }
        )


class PreferenceView(CognitoMFAView):
    """``POST preference/``: turn TOTP MFA on/off, make it preferred or not."""

    throttle_classes = [PreferenceThrottle]
    body_serializers = {"POST": serializers.PreferenceSerializer}

    @document(
        operation_id="cognito_mfa_preference",
        summary="Turn TOTP MFA on or off; make it preferred or not",
        description="Turning it off needs a recent sign-in (COGNITO_MFA_REAUTH_MAX_AGE).",
        request=serializers.PreferenceSerializer,
        responses={200: serializers.StatusSerializer},
        errors=(
            *AUTHENTICATED,
            "invalid",
            "request_too_large",
            "reauthentication_required",
            "not_found",
            "throttled",
            "cognito_error",
        ),
    )
    def post(self, request: Request) -> Response:
        body = self.valid_body
        payload = flows.set_preference(
            self.context(request),
            user=request.user,
            token=self.token(request),
            enabled=body["enabled"],
            preferred=body["preferred"],
        )
        return Response(serializers.StatusSerializer(payload).data)


class ChallengeView(CognitoMFAView):
    """Base of the sign-in challenge endpoints: no login (the Session and the challenge token
    authorise), their own throttle per client address."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    throttle_classes = [ChallengeThrottle]
    source = "challenge"


class ChallengeEnrollmentView(ChallengeView):
    """``POST challenge/enrollments/``: start enrollment with a sign-in ``MFA_SETUP`` Session."""

    call_budget = StartBudgetThrottle
    body_serializers = {"POST": serializers.ChallengeStartSerializer}

    @document(
        operation_id="cognito_mfa_challenge_start",
        summary="Start an enrollment with a sign-in MFA_SETUP Session (no bearer token)",
        request=serializers.ChallengeStartSerializer,
        responses={201: serializers.ChallengeStartedEnrollmentSerializer},
        errors=(
            "invalid",
            "request_too_large",
            "token_invalid",
            "not_found",
            "throttled",
            "cognito_error",
            "cognito_unavailable",
        ),
    )
    @sensitive_variables("body", "started")
    def post(self, request: Request) -> Response:
        body = self.valid_body
        started = flows.start_challenge_enrollment(
            self.context(request),
            cognito_username=body["username"],
            session=body["session"],
            device_name=body.get("friendly_device_name", ""),
        )
        return Response(_started_payload(started), status=status.HTTP_201_CREATED)


class ChallengeVerifyView(ChallengeView):
    """``POST challenge/enrollments/{id}/verify/``: verify with the challenge token."""

    call_budget = VerifyBudgetThrottle
    body_serializers = {"POST": serializers.ChallengeVerifySerializer}

    @document(
        operation_id="cognito_mfa_challenge_verify",
        summary="Verify the code of a sign-in enrollment (authorised by its challenge token)",
        request=serializers.ChallengeVerifySerializer,
        responses={200: serializers.ChallengeVerifiedSerializer},
        errors=(*VERIFY_ERRORS, "cognito_unavailable"),
        enrollment_id=True,
    )
    @sensitive_variables("body", "verified")
    def post(self, request: Request, enrollment_id: str) -> Response:
        body = self.valid_body
        enrollment = flows.get_challenge_enrollment(
            self.parse_id(enrollment_id), body["challenge_token"]
        )
        verified = flows.verify_enrollment(
            self.context(request),
            enrollment=enrollment,
            user_code=body["user_code"],
            device_name=body.get("friendly_device_name"),
        )
        return Response(
            {
                "id": str(verified.enrollment.id),
                "status": verified.enrollment.status,
                "session": verified.session,
                "authentication_result": verified.authentication_result,
            }
        )
