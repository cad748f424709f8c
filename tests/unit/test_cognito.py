"""The Cognito boundary: every error row of the API table, driven by botocore's Stubber.

moto cannot answer ``Status: ERROR``, throttle, fail inside or time out; the Stubber (and
``before-send`` hooks) can. Each case goes through the REST API and then checks what the
enrollment row looks like: when the failure was not the user's code, nothing changed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import pytest
from botocore.awsrequest import AWSResponse
from botocore.stub import Stubber
from rest_framework.test import APIClient

from cognito_mfa import cognito, redaction
from cognito_mfa import exceptions as exc
from cognito_mfa.models import AuditEvent, Enrollment
from cognito_mfa.redaction import RedactingFilter
from tests.support.cognito import fresh_code

BASE = "/api/mfa/"
SENTINEL = "SENTINEL-cognito-message-7f3a"
CODE = "123456"


@contextmanager
def stubbed() -> Iterator[Stubber]:
    """Put a Stubber on the process-wide client; every queued response must be used."""
    stubber = Stubber(cognito.get_client().client)
    stubber.activate()
    try:
        yield stubber
        stubber.assert_no_pending_responses()
    finally:
        stubber.deactivate()


def _state(enrollment_id: str) -> dict[str, Any]:
    row = Enrollment.objects.get(pk=enrollment_id)
    return {
        "status": row.status,
        "attempts": row.attempts,
        "credential": bytes(row.encrypted_credential) if row.encrypted_credential else None,
        "lease": row.verify_lease_until,
        "finished_at": row.finished_at,
        "verified_at": row.verified_at,
        "preference_pending": row.preference_pending,
        "events": AuditEvent.objects.filter(enrollment_id=enrollment_id).count(),
    }


@pytest.fixture
def started(alice_api: APIClient) -> dict[str, Any]:
    response = alice_api.post(BASE + "enrollments/", {}, format="json")
    assert response.status_code == 201
    return response.json()


def _verify(api: APIClient, enrollment_id: str, code: str = CODE) -> Any:
    return api.post(f"{BASE}enrollments/{enrollment_id}/verify/", {"user_code": code}, "json")


def _verify_params(token: str) -> dict[str, Any]:
    return {"AccessToken": token, "UserCode": CODE}


# --- verify: the user's code was wrong -----------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "answer",
    ["Status ERROR", "EnableSoftwareTokenMFAException", "CodeMismatchException"],
)
def test_rejected_code_is_invalid_code_and_counts(
    alice_api: APIClient, alice: str, started: dict[str, Any], answer: str
) -> None:
    before = _state(started["id"])
    with stubbed() as stubber:
        if answer == "Status ERROR":
            stubber.add_response(
                "verify_software_token", {"Status": "ERROR"}, _verify_params(alice)
            )
        else:
            stubber.add_client_error(
                "verify_software_token",
                service_error_code=answer,
                service_message=SENTINEL,
                http_status_code=400,
                expected_params=_verify_params(alice),
            )
        response = _verify(alice_api, started["id"])

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_code"
    assert response.json()["attempts_remaining"] == 4
    assert SENTINEL.encode() not in response.content
    after = _state(started["id"])
    assert after["attempts"] == before["attempts"] + 1
    assert after["status"] == "pending"
    assert after["credential"] == before["credential"]
    assert after["lease"] is None


# --- verify: the credential is gone --------------------------------------------------------------


@pytest.mark.django_db
def test_not_authorized_on_verify_expires_the_enrollment(
    alice_api: APIClient, alice: str, started: dict[str, Any]
) -> None:
    with stubbed() as stubber:
        stubber.add_client_error(
            "verify_software_token",
            service_error_code="NotAuthorizedException",
            service_message=f"Invalid Access Token {alice} {SENTINEL}",
            http_status_code=400,
        )
        response = _verify(alice_api, started["id"])

    assert response.status_code == 410
    assert response.json()["code"] == "enrollment_expired"
    assert SENTINEL.encode() not in response.content
    assert alice.encode() not in response.content
    after = _state(started["id"])
    assert after["status"] == "expired"
    assert after["credential"] is None
    assert after["attempts"] == 0


# --- verify: Cognito failed, not the user: nothing changes -------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("error_code", "http_status", "expected_status", "expected_code"),
    [
        ("TooManyRequestsException", 400, 503, "cognito_unavailable"),
        ("InternalErrorException", 500, 503, "cognito_unavailable"),
        ("LimitExceededException", 400, 503, "cognito_unavailable"),
        ("ResourceNotFoundException", 400, 502, "cognito_error"),
        ("InvalidParameterException", 400, 502, "cognito_error"),
        ("SomethingCognitoInventsLaterException", 400, 502, "cognito_error"),
    ],
)
def test_cognito_failure_on_verify_changes_nothing(
    alice_api: APIClient,
    started: dict[str, Any],
    error_code: str,
    http_status: int,
    expected_status: int,
    expected_code: str,
) -> None:
    before = _state(started["id"])
    with stubbed() as stubber:
        stubber.add_client_error(
            "verify_software_token",
            service_error_code=error_code,
            service_message=SENTINEL,
            http_status_code=http_status,
        )
        response = _verify(alice_api, started["id"])

    assert response.status_code == expected_status
    assert response.json()["code"] == expected_code
    assert SENTINEL.encode() not in response.content
    assert error_code.encode() not in response.content
    if expected_status == 503:
        assert int(response["Retry-After"]) >= 1
    assert _state(started["id"]) == before
    # And the enrollment still works once Cognito is back.
    assert _verify(alice_api, started["id"], fresh_code()).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("error", ["connect", "read"])
def test_timeouts_on_verify_change_nothing(
    alice_api: APIClient, started: dict[str, Any], error: str
) -> None:
    before = _state(started["id"])
    sends: list[str] = []

    def time_out(request: Any, **_: Any) -> None:
        sends.append(request.url)
        if error == "connect":
            raise botocore.exceptions.ConnectTimeoutError(endpoint_url=request.url)
        raise botocore.exceptions.ReadTimeoutError(endpoint_url=request.url)

    events = cognito.get_client().client.meta.events
    events.register_first("before-send.cognito-idp", time_out, unique_id="time-out")
    try:
        response = _verify(alice_api, started["id"], fresh_code())
    finally:
        events.unregister("before-send.cognito-idp", unique_id="time-out")

    assert response.status_code == 503
    assert response.json()["code"] == "cognito_unavailable"
    assert int(response["Retry-After"]) >= 1
    # A verify that may have reached Cognito (read timeout) is never sent again on its own;
    # one that never left the machine (no connection) is retried like any other call.
    assert len(sends) == (1 if error == "read" else 3)
    assert _state(started["id"]) == before


@pytest.mark.django_db
def test_set_preference_failure_after_verify_leaves_the_preference_owed(
    alice_api: APIClient, alice: str, started: dict[str, Any]
) -> None:
    with stubbed() as stubber:
        stubber.add_response("verify_software_token", {"Status": "SUCCESS"})
        stubber.add_client_error(
            "set_user_mfa_preference",
            service_error_code="TooManyRequestsException",
            service_message=SENTINEL,
            http_status_code=400,
        )
        response = _verify(alice_api, started["id"])

    assert response.status_code == 200
    assert response.json() == {
        "id": started["id"],
        "status": "verified",
        "mfa_enabled": False,
        "preferred": False,
    }
    row = Enrollment.objects.get(pk=started["id"])
    assert row.status == "verified"
    assert row.preference_pending is True
    assert row.encrypted_credential is None


# --- start ---------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("operation", "error_code", "expected_status", "expected_code"),
    [
        ("associate_software_token", "TooManyRequestsException", 503, "cognito_unavailable"),
        ("associate_software_token", "InternalErrorException", 503, "cognito_unavailable"),
        ("associate_software_token", "NotAuthorizedException", 401, "token_invalid"),
        ("associate_software_token", "ResourceNotFoundException", 502, "cognito_error"),
        ("associate_software_token", "ConcurrentModificationException", 502, "cognito_error"),
        ("get_user", "TooManyRequestsException", 503, "cognito_unavailable"),
        ("get_user", "NotAuthorizedException", 401, "token_invalid"),
    ],
)
def test_cognito_failure_on_start_creates_nothing(
    alice_api: APIClient,
    alice: str,
    settings: Any,
    operation: str,
    error_code: str,
    expected_status: int,
    expected_code: str,
) -> None:
    if operation == "get_user":
        # Only a sign-in older than the step-up window asks Cognito whether a TOTP exists.
        settings.COGNITO_MFA_REAUTH_MAX_AGE = timedelta(0)
    with stubbed() as stubber:
        stubber.add_client_error(
            operation,
            service_error_code=error_code,
            service_message=f"{SENTINEL} {alice}",
            http_status_code=400,
            expected_params={"AccessToken": alice},
        )
        response = alice_api.post(BASE + "enrollments/", {}, format="json")

    assert response.status_code == expected_status
    assert response.json()["code"] == expected_code
    assert SENTINEL.encode() not in response.content
    assert alice.encode() not in response.content
    assert Enrollment.objects.count() == 0
    assert AuditEvent.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("error", ["connect", "read"])
def test_timeouts_on_start_create_nothing(
    alice_api: APIClient, monkeypatch: pytest.MonkeyPatch, error: str
) -> None:
    monkeypatch.setattr("botocore.endpoint.time.sleep", lambda seconds: None)
    sends: list[str] = []

    def time_out(request: Any, **_: Any) -> None:
        sends.append(request.headers["X-Amz-Target"].decode().rsplit(".", 1)[-1])
        if error == "connect":
            raise botocore.exceptions.ConnectTimeoutError(endpoint_url=request.url)
        raise botocore.exceptions.ReadTimeoutError(endpoint_url=request.url)

    events = cognito.get_client().client.meta.events
    events.register_first("before-send.cognito-idp", time_out, unique_id="time-out")
    try:
        response = alice_api.post(BASE + "enrollments/", {}, format="json")
    finally:
        events.unregister("before-send.cognito-idp", unique_id="time-out")

    assert response.status_code == 503
    assert response.json()["code"] == "cognito_unavailable"
    # A fresh sign-in goes straight to AssociateSoftwareToken, which is safe to repeat.
    assert sends == ["AssociateSoftwareToken"] * 3
    assert Enrollment.objects.count() == 0


@pytest.mark.django_db
def test_start_returns_the_stubbed_secret(alice_api: APIClient, alice: str) -> None:
    with stubbed() as stubber:
        stubber.add_response(
            "associate_software_token", {"SecretCode": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"}
        )
        response = alice_api.post(BASE + "enrollments/", {}, format="json")
    assert response.status_code == 201
    assert response.json()["secret_code"] == "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


# --- preference ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_preference_without_a_verified_token_is_400(alice_api: APIClient, alice: str) -> None:
    with stubbed() as stubber:
        stubber.add_client_error(
            "set_user_mfa_preference",
            service_error_code="SoftwareTokenMFANotFoundException",
            service_message=SENTINEL,
            http_status_code=400,
            expected_params={
                "AccessToken": alice,
                "SoftwareTokenMfaSettings": {"Enabled": True, "PreferredMfa": True},
            },
        )
        response = alice_api.post(
            BASE + "preference/", {"enabled": True, "preferred": True}, "json"
        )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert SENTINEL.encode() not in response.content
    assert AuditEvent.objects.count() == 0


@pytest.mark.django_db
def test_preference_when_cognito_throttles_is_503(alice_api: APIClient) -> None:
    with stubbed() as stubber:
        stubber.add_client_error(
            "set_user_mfa_preference",
            service_error_code="TooManyRequestsException",
            service_message=SENTINEL,
            http_status_code=400,
        )
        response = alice_api.post(
            BASE + "preference/", {"enabled": True, "preferred": True}, "json"
        )
    assert response.status_code == 503
    assert response.json()["code"] == "cognito_unavailable"
    assert "Retry-After" in response


@pytest.mark.django_db
def test_status_when_cognito_is_down_is_503(alice_api: APIClient) -> None:
    with stubbed() as stubber:
        stubber.add_client_error(
            "get_user", service_error_code="InternalErrorException", http_status_code=500
        )
        response = alice_api.get(BASE + "status/")
    assert response.status_code == 503
    assert response.json()["code"] == "cognito_unavailable"


# --- retries: GetUser is repeated on a 500, VerifySoftwareToken never -----------------------------


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


def _answer_500(sends: list[str]) -> None:
    """Answer every request of the current client with HTTP 500 InternalErrorException."""

    def answer_500(request: Any, **_: Any) -> AWSResponse:
        sends.append(request.headers["X-Amz-Target"].decode().rsplit(".", 1)[-1])
        body = b'{"__type": "InternalErrorException", "message": "' + SENTINEL.encode() + b'"}'
        return AWSResponse(
            request.url,
            500,
            {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": "r-1"},
            _Raw(body),
        )

    events = cognito.get_client().client.meta.events
    events.register_first("before-send.cognito-idp", answer_500, unique_id="answer-500")


@pytest.fixture
def failing_http(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every request fails with a 500 (no network, no backoff sleeps); record what was sent."""
    monkeypatch.setattr("botocore.endpoint.time.sleep", lambda seconds: None)
    sends: list[str] = []
    _answer_500(sends)
    return sends


def test_get_user_is_retried_on_a_500(failing_http: list[str], settings: Any) -> None:
    with pytest.raises(exc.CognitoUnavailable):
        cognito.get_client().get_user(access_token="token")
    assert failing_http == ["GetUser"] * 3


def test_verify_is_not_retried_on_a_500(failing_http: list[str]) -> None:
    with pytest.raises(exc.CognitoUnavailable):
        cognito.get_client().verify_software_token(access_token="token", user_code=CODE)
    assert failing_http == ["VerifySoftwareToken"]


def test_retry_attempts_follow_the_setting(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    monkeypatch.setattr("botocore.endpoint.time.sleep", lambda seconds: None)
    settings.COGNITO_MFA_MAX_RETRY_ATTEMPTS = 5  # drops the client (setting_changed)
    sends: list[str] = []
    _answer_500(sends)
    with pytest.raises(exc.CognitoUnavailable):
        cognito.get_client().get_user(access_token="token")
    assert sends == ["GetUser"] * 5
    with pytest.raises(exc.CognitoUnavailable):
        cognito.get_client().verify_software_token(access_token="token", user_code=CODE)
    assert sends[5:] == ["VerifySoftwareToken"]


def test_client_is_built_once_per_process() -> None:
    assert cognito.get_client() is cognito.get_client()
    first = cognito.get_client().client
    config = first.meta.config
    assert config.connect_timeout == 2.0
    assert config.read_timeout == 5.0
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}


BUILT_BY_FACTORY: list[Any] = []


def plain_boto3_client() -> Any:
    """A site's own ``COGNITO_MFA_CLIENT_FACTORY``: a bare client, no rules of the app's."""
    client = boto3.session.Session().client(
        "cognito-idp",
        region_name="us-east-1",
        config=botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 3}),
    )
    BUILT_BY_FACTORY.append(client)
    return client


def test_the_client_factory_setting_builds_the_client_and_the_app_guards_it(
    settings: Any,
) -> None:
    BUILT_BY_FACTORY.clear()
    settings.COGNITO_MFA_CLIENT_FACTORY = f"{__name__}.plain_boto3_client"
    client = cognito.get_client()
    assert cognito.get_client() is client
    assert [client.client] == BUILT_BY_FACTORY  # built once, by the site's factory
    # Whichever factory built it, botocore's request logs are redacted ...
    assert any(isinstance(f, RedactingFilter) for f in logging.getLogger("botocore").filters)
    # ... and a verify that may have reached Cognito is not sent again.
    sends: list[str] = []

    def time_out(request: Any, **_: Any) -> None:
        sends.append(request.url)
        raise botocore.exceptions.ReadTimeoutError(endpoint_url=request.url)

    client.client.meta.events.register_first("before-send.cognito-idp", time_out)
    with pytest.raises(exc.CognitoUnavailable):
        client.verify_software_token(access_token="token", user_code=CODE)
    assert len(sends) == 1


def test_a_new_client_factory_drops_the_cached_client(settings: Any) -> None:
    default = cognito.get_client()
    settings.COGNITO_MFA_CLIENT_FACTORY = f"{__name__}.plain_boto3_client"
    assert cognito.get_client() is not default
    assert cognito.get_client().client is BUILT_BY_FACTORY[-1]


# --- units ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error_code", "expected"),
    [
        ("EnableSoftwareTokenMFAException", exc.InvalidCode),
        ("CodeMismatchException", exc.InvalidCode),
        ("NotAuthorizedException", exc.CredentialRejected),
        ("SoftwareTokenMFANotFoundException", exc.SoftwareTokenMissing),
        ("TooManyRequestsException", exc.CognitoUnavailable),
        ("InternalErrorException", exc.CognitoUnavailable),
        ("UserNotFoundException", exc.CognitoUserNotFound),
    ],
)
def test_error_map_rows(error_code: str, expected: type[exc.CognitoMFAError]) -> None:
    assert cognito.ERROR_MAP[error_code] is expected


def test_error_map_codes_and_statuses() -> None:
    assert (exc.InvalidCode.code, exc.InvalidCode.status) == ("invalid_code", 400)
    assert (exc.CredentialRejected.status, exc.SoftwareTokenMissing.status) == (401, 400)
    assert (exc.CognitoUnavailable.code, exc.CognitoUnavailable.status) == (
        "cognito_unavailable",
        503,
    )
    assert (exc.CognitoConfigurationError.code, exc.CognitoConfigurationError.status) == (
        "cognito_error",
        502,
    )
    assert "ResourceNotFoundException" not in cognito.ERROR_MAP  # falls to cognito_error


@pytest.mark.parametrize(
    "text",
    [
        "{'AccessToken': 'opaque-value-1', 'UserCode': '123456'}",
        'b\'{"AccessToken": "opaque-value-1", "UserCode": "123456"}\'',
        '{"SecretCode": "opaque-value-1", "Session": "opaque-value-1"}',
        "params: {'ChallengeResponses': {'USERNAME': 'u', 'SECRET_HASH': 'opaque-value-1'}}",
        "{'SOFTWARE_TOKEN_MFA_CODE': '123456', 'PASSWORD': 'opaque-value-1'}",
        "Invalid Access Token eyJraWQiOiJkdW1teSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl (opaque-value-1)",
        '{\\"RefreshToken\\": \\"opaque-value-1\\", \\"UserCode\\": \\"123456\\"}',
    ],
)
def test_redact_masks_sensitive_values(text: str) -> None:
    if "eyJ" in text:
        cleaned = redaction.redact(text)
        assert "eyJ" not in cleaned
        assert "c2lnbmF0dXJl" not in cleaned
        return
    cleaned = redaction.redact(text)
    assert "opaque-value-1" not in cleaned
    assert "123456" not in cleaned
    assert "***" in cleaned


def test_redact_keeps_harmless_text() -> None:
    text = "Making request for OperationModel(name=GetUser) with params: {'url_path': '/'}"
    assert redaction.redact(text) == text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('["SOFTWARE_TOKEN_MFA"]', ["SOFTWARE_TOKEN_MFA"]),  # AWS: JSON
        ("['SOFTWARE_TOKEN_MFA', 'SMS_MFA']", ["SOFTWARE_TOKEN_MFA", "SMS_MFA"]),  # moto: repr
        (["SOFTWARE_TOKEN_MFA"], ["SOFTWARE_TOKEN_MFA"]),
        (("EMAIL_OTP",), ["EMAIL_OTP"]),
        ("", []),
        (None, []),
        ("not a list", []),
        ("{'a': 1}", []),
        ("__import__('os').system('true')", []),
    ],
)
def test_parse_mfas_can_setup(raw: Any, expected: list[str]) -> None:
    assert cognito.parse_mfas_can_setup(raw) == expected


def test_secret_hash_matches_a_known_vector() -> None:
    # printf '%s' 'alice@example.com7lht6o1r6u2pnlh4uvb9h1a5c3' \
    #   | openssl dgst -sha256 -hmac 'r1t0v3m2q8k4e1o5b5h8d7p3n6c9l2s0u4a7f1g3j5' -binary | base64
    expected = "U+Q+33DEK5QkQYj8JKR30Pw21w9O940din/wuWbakmE="
    assert (
        cognito.secret_hash(
            "alice@example.com",
            "7lht6o1r6u2pnlh4uvb9h1a5c3",
            "r1t0v3m2q8k4e1o5b5h8d7p3n6c9l2s0u4a7f1g3j5",
        )
        == expected
    )


def test_secret_hash_is_keyed_by_the_client_secret() -> None:
    digest = hmac.new(b"k", "user-é".encode() + b"client", hashlib.sha256).digest()
    assert cognito.secret_hash("user-é", "client", "k") == base64.b64encode(digest).decode()
    assert cognito.secret_hash("user", "client", "k1") != cognito.secret_hash(
        "user", "client", "k2"
    )


def test_exactly_one_credential_is_sent() -> None:
    client = cognito.get_client()
    with pytest.raises(ValueError):
        client.verify_software_token(access_token="a", session="s", user_code=CODE)
    with pytest.raises(ValueError):
        client.associate_software_token()


def test_session_flow_sends_only_the_session(settings: Any) -> None:
    with stubbed() as stubber:
        stubber.add_response(
            "verify_software_token",
            {"Status": "SUCCESS", "Session": "next-session-0123456789"},
            {"Session": "the-session-0123456789", "UserCode": CODE, "FriendlyDeviceName": "phone"},
        )
        result = cognito.get_client().verify_software_token(
            session="the-session-0123456789", user_code=CODE, device_name="phone"
        )
    assert result.session == "next-session-0123456789"


def test_any_status_but_success_fails_closed() -> None:
    """Cognito's ERROR is a wrong code; an answer without a Status is not Cognito's verdict
    on the code (a 502 that counts no attempt). Neither ever verifies."""
    for response, error in (
        ({"Status": "ERROR"}, exc.InvalidCode),
        ({}, exc.CognitoConfigurationError),
    ):
        with stubbed() as stubber:
            stubber.add_response("verify_software_token", response)
            with pytest.raises(error):
                cognito.get_client().verify_software_token(access_token="t", user_code=CODE)
