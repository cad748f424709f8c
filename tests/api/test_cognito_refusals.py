"""What the fuzzed API found, pinned as plain tests; and the schema as a soft dependency."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

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


def test_schema_is_served_at_api_schema(client: Any) -> None:
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert "/api/mfa/enrollments/{enrollment_id}/verify/" in document["paths"]


_WITHOUT_SPECTACULAR = """
import json, sys
sys.modules["drf_spectacular"] = None  # any import of it now raises ImportError
import django
django.setup()
from django.conf import settings
from django.test import Client
import cognito_mfa.views, cognito_mfa.schema
client = Client()
print(json.dumps({
    "has_spectacular": cognito_mfa.schema.HAS_SPECTACULAR,
    "installed": "drf_spectacular" in settings.INSTALLED_APPS,
    "status": client.get("/api/mfa/status/").status_code,
    "body": client.get("/api/mfa/status/").json(),
    "schema": client.get("/api/schema/").status_code,
}))
"""


def test_the_app_works_without_drf_spectacular() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        "EXAMPLE_DB_PATH": ":memory:",
    }
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_SPECTACULAR],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == {
        "has_spectacular": False,
        "installed": False,
        "status": 401,
        "body": {"code": "not_authenticated", "detail": "A Cognito access token is required."},
        "schema": 404,
    }
