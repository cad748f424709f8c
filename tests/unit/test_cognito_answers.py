"""Cognito answering in shapes the API reference does not allow, and error bodies in logs.

botocore checks neither the JSON type of an answer nor its members' types: a proxy's HTML
page, a JSON array or ``"SecretCode": 5`` arrive as they are. Each must be a 502
``cognito_error`` that changed nothing (never a 500), logged for the operator without any
token, Session or secret.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.stub import Stubber
from rest_framework.test import APIClient

from cognito_mfa import cognito, redaction
from cognito_mfa import exceptions as exc
from cognito_mfa.cognito import CognitoClient, get_client
from cognito_mfa.models import AuditEvent, Enrollment
from tests.support.challenge import Spa, configure
from tests.support.cognito import create_pool, fresh_code
from tests.support.enrollments import start_enrollment
from tests.support.sentinels import LogCapture, all_loggers_at_debug
from tests.support.signals import SignalLog

BASE = "/api/mfa/"
SERVICE = "cognito-identity-provider"


def _rows() -> list[tuple[Any, ...]]:
    return sorted(Enrollment.objects.values_list("id", "status", "attempts"))


@contextmanager
def raw_answer(operation: str, body: bytes, status: int = 200) -> Iterator[None]:
    """Answer every call of ``operation`` with ``body``, unchecked (as a proxy could)."""

    class _Body:
        def stream(self, **_: Any) -> Iterator[bytes]:
            yield body

    def handler(request: Any, **_: Any) -> AWSResponse:
        headers = {
            "Content-Type": "application/x-amz-json-1.1",
            "Content-Length": str(len(body)),
            "x-amzn-RequestId": "00000000-0000-0000-0000-000000000000",
        }
        return AWSResponse(request.url, status, headers, _Body())

    events = get_client().client.meta.events
    events.register_first(f"before-send.{SERVICE}.{operation}", handler)
    try:
        yield
    finally:
        events.unregister(f"before-send.{SERVICE}.{operation}", handler)


@pytest.fixture
def known_alice(alice_api: APIClient) -> APIClient:
    """Alice's client, her site user already made (the first request makes it)."""
    assert alice_api.get(BASE + "enrollments/").status_code == 200
    return alice_api


@pytest.fixture
def started(known_alice: APIClient) -> str:
    return str(start_enrollment(known_alice)["id"])


def _assert_cognito_error(response: Any) -> None:
    assert response.status_code == 502, response.content[:300]
    assert response.json()["code"] == "cognito_error"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        b"<html>Bad Gateway</html>",  # botocore reads it as {"message": ...}: no SecretCode
        b"[]",  # AttributeError inside botocore's parser
        b"null",
        b"{}",
        b'{"SecretCode": null}',
        b'{"SecretCode": 5}',
        b'{"SecretCode": ""}',
        b'{"SecretCode": "JBSWY3DPEHPK3PXP", "Session": 7}',
    ],
    ids=[
        "html",
        "array",
        "null",
        "empty",
        "secret null",
        "secret number",
        "secret empty",
        "session number",
    ],
)
def test_a_start_answer_of_the_wrong_shape_is_a_502_that_creates_nothing(
    known_alice: APIClient, started: str, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    before = _rows()
    events = AuditEvent.objects.count()
    with (
        caplog.at_level(logging.ERROR, logger="cognito_mfa"),
        raw_answer("AssociateSoftwareToken", body),
    ):
        response = known_alice.post(BASE + "enrollments/", {}, format="json")
    _assert_cognito_error(response)
    # The older pending enrollment is untouched: nothing was superseded.
    assert _rows() == before
    assert AuditEvent.objects.count() == events
    assert any("AssociateSoftwareToken" in record.getMessage() for record in caplog.records)


@pytest.mark.django_db
def test_a_secret_answered_without_a_session_is_a_502_through_the_stubber(
    known_alice: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = __import__("boto3").client("cognito-idp", region_name="us-east-1")
    monkeypatch.setattr(cognito.client, "_client", CognitoClient(raw))
    with Stubber(raw) as stubber:
        stubber.add_response("associate_software_token", {"Session": "s" * 40})
        response = known_alice.post(BASE + "enrollments/", {}, format="json")
    _assert_cognito_error(response)
    assert Enrollment.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [b"null", b"[]", b'{"UserMFASettingList": [1]}', b'{"PreferredMfaSetting": 7}'],
    ids=["null", "array", "methods not strings", "preferred a number"],
)
def test_a_get_user_answer_of_the_wrong_shape_is_a_502(known_alice: APIClient, body: bytes) -> None:
    with raw_answer("GetUser", body):
        response = known_alice.get(BASE + "status/")
    _assert_cognito_error(response)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{}", "cognito_error"),
        (b"<html><body>Bad Gateway</body></html>", "cognito_error"),
        (b'{"Status": 1}', "cognito_error"),
        (b'{"Status": "SUCCESS", "Session": 5}', "cognito_error"),
        (b'{"Status": "ERROR"}', "invalid_code"),
    ],
    ids=["no status", "a proxy's page", "status a number", "session a number", "status ERROR"],
)
def test_a_verify_answer_without_a_readable_status_is_a_502_that_counts_nothing(
    known_alice: APIClient, started: str, body: bytes, code: str
) -> None:
    """Only Cognito's own ERROR is a wrong code; an answer that is not Cognito's (a proxy's
    page, a missing Status) is not the user's doing and spends none of their attempts."""
    with raw_answer("VerifySoftwareToken", body):
        response = known_alice.post(
            f"{BASE}enrollments/{started}/verify/", {"user_code": fresh_code()}, format="json"
        )
    assert response.json()["code"] == code
    row = Enrollment.objects.get(pk=started)
    assert (row.status, row.attempts, row.verify_lease_until) == (
        "pending",
        1 if code == "invalid_code" else 0,
        None,
    )


@pytest.mark.django_db(transaction=True)
def test_a_failing_otpauth_uri_leaves_the_older_enrollment_and_sends_no_signal(
    known_alice: APIClient,
    started: str,
    signal_log: SignalLog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Everything that can fail after Cognito answered runs before the new row is written:
    the older pending enrollment is not cancelled and no half-made one is left behind."""
    from tests.support.cognito import TestAdapter

    def broken_label(self: Any, username: str, user: Any) -> str:
        raise RuntimeError("the host's label hook failed")

    monkeypatch.setattr(TestAdapter, "get_totp_label", broken_label)
    before, events = _rows(), AuditEvent.objects.count()
    signal_log.events.clear()
    with pytest.raises(RuntimeError):
        known_alice.post(BASE + "enrollments/", {}, format="json")
    assert _rows() == before
    assert AuditEvent.objects.count() == events
    assert signal_log.events == []


@pytest.mark.django_db(transaction=True)
def test_a_failing_otpauth_uri_on_a_challenge_start_leaves_nothing(
    moto_client: Any, settings: Any, signal_log: SignalLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.cognito import TestAdapter

    pool = create_pool(moto_client, mfa="ON")
    configure(settings, pool)
    pool.create_user("olga", permanent=False)
    session = Spa(pool).reach_mfa_setup("olga")

    def broken_issuer(self: Any, request: Any) -> str:
        raise RuntimeError("the host's issuer hook failed")

    monkeypatch.setattr(TestAdapter, "get_totp_issuer", broken_issuer)
    with pytest.raises(RuntimeError):
        APIClient().post(
            BASE + "challenge/enrollments/", {"username": "olga", "session": session}, "json"
        )
    assert Enrollment.objects.count() == 0
    assert AuditEvent.objects.count() == 0
    assert signal_log.events == []


def test_an_unreadable_answer_is_mapped_in_the_client_itself() -> None:
    """Not only through the API: the typed method raises our error, never botocore's."""

    class Broken:
        def get_user(self, **_: Any) -> Any:
            raise TypeError("'NoneType' object is not subscriptable")

    with pytest.raises(exc.CognitoConfigurationError):
        CognitoClient(Broken()).get_user(access_token="t")


# --- error bodies in botocore's DEBUG log ------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        'Response body:\nb\'{"__type":"NotAuthorizedException","message":"Invalid session '
        "for the user, session SENTINEL.\"}'",
        "{'Error': {'Message': 'Invalid session SENTINEL', 'Code': 'NotAuthorizedException'}}",
        "{'Error': {'Message': \"it's SENTINEL\", 'Code': 'X'}}",
        '{\\"message\\": \\"SENTINEL\\"}',
    ],
)
def test_redact_masks_error_messages(line: str) -> None:
    cleaned = redaction.redact(line)
    assert "SENTINEL" not in cleaned
    assert "***" in cleaned


def test_redact_keeps_other_keys_that_end_in_message() -> None:
    assert redaction.redact("errorMessage: 'kept'") == "errorMessage: 'kept'"


@pytest.mark.django_db
def test_a_session_quoted_in_cognitos_error_message_is_not_logged(
    moto_client: Any, settings: Any
) -> None:
    """moto's NotAuthorizedException for an unknown Session quotes the Session; botocore logs
    the whole error body at DEBUG."""
    pool = create_pool(moto_client, mfa="ON")
    configure(settings, pool)
    sentinel = "SENTINELSESSION0123456789abcdefABCDEF"
    capture = LogCapture(excluded_prefixes=("moto", "werkzeug"))
    with all_loggers_at_debug(capture):
        response = APIClient().post(
            BASE + "challenge/enrollments/", {"username": "olga", "session": sentinel}, "json"
        )
    assert response.status_code == 401
    assert sentinel not in response.content.decode()
    assert any("Response body" in line for line in capture.records)  # botocore did log it
    leaked = [line[:200] for line in capture.records if sentinel in line]
    assert leaked == [], leaked
