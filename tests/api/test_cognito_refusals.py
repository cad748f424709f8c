"""What Cognito would refuse is answered before or instead of a 5xx: the preference without a
verified token, challenge starts Cognito would reject, Sessions Cognito no longer knows (each
first found by fuzzing the API)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from cognito_mfa import crypto, flows
from cognito_mfa.models import Enrollment, EnrollmentFlow, EnrollmentStatus
from tests.support.cognito import Pool, count_cognito_calls, fresh_code

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db


def test_turning_totp_on_without_a_verified_token_is_a_400_not_a_502(
    pool: Pool, alice_api: APIClient
) -> None:
    # Cognito answers InvalidParameterException ("User has not verified software token mfa").
    response = alice_api.post(
        "/api/mfa/preference/", {"enabled": True, "preferred": True}, format="json"
    )
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid"
    assert "authenticator" in response.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"username": "alice", "session": "too-short"},  # Cognito's Session is 20..4096
        {"username": "alice", "session": "s" * 4097},
        {"username": "ali ce", "session": "s" * 40},  # no spaces in a Cognito username
        {"username": "ali\x00ce", "session": "s" * 40},  # NUL: not even storable in PostgreSQL
        {"username": "alice\u200b", "session": "s" * 40},  # a format character
        {"username": "", "session": "s" * 40},
    ],
)
def test_challenge_start_rejects_what_cognito_would_refuse_before_calling_it(
    pool: Pool, body: dict[str, str]
) -> None:
    with count_cognito_calls() as counter:
        response = APIClient().post("/api/mfa/challenge/enrollments/", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid"
    assert counter.calls == []


def test_challenge_start_with_a_session_cognito_does_not_know_is_a_401(pool: Pool) -> None:
    response = APIClient().post(
        "/api/mfa/challenge/enrollments/",
        {"username": "alice", "session": "s" * 40},
        format="json",
    )
    assert response.status_code == 401, response.content
    assert response.json()["code"] == "token_invalid"


def test_verify_with_a_session_cognito_no_longer_knows_expires_the_enrollment(
    pool: Pool,
) -> None:
    # moto answers ResourceNotFoundException for a used-up Session (AWS: NotAuthorized).
    token = "known-challenge-token"
    enrollment = Enrollment.objects.create(
        cognito_username="dora",
        flow=EnrollmentFlow.CHALLENGE,
        expires_at=flows.now() + timedelta(minutes=3),
        encrypted_credential=crypto.encrypt("a-session-that-was-used-up"),
        challenge_token_hash=flows.hash_challenge_token(token),
    )
    response = APIClient().post(
        f"/api/mfa/challenge/enrollments/{enrollment.id}/verify/",
        {"challenge_token": token, "user_code": fresh_code()},
        format="json",
    )
    assert response.status_code == 410, response.content
    assert response.json()["code"] == "enrollment_expired"
    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.EXPIRED
    assert enrollment.encrypted_credential is None
