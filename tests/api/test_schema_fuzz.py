"""Schemathesis against the example project's OpenAPI schema, with moto as Cognito.

Every operation of ``/api/schema/`` is fuzzed through the WSGI app with a valid bearer token:
no 5xx at all (moto is up and configured), only documented statuses, every body as
documented. Three cases in four that name an enrollment are pointed at a real one (the
caller's pending or finished one, or a challenge enrollment whose token is known), so the runs
reach the verify, lock and cancel paths instead of stopping at 404.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from cognito_mfa import crypto, flows
from cognito_mfa.adapter import get_adapter
from cognito_mfa.models import Enrollment, EnrollmentFlow, EnrollmentStatus, FailureCounter
from cognito_mfa.tokens import validate_access_token
from tests.support.cognito import Pool

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


@dataclass
class FuzzTarget:
    """The caller, and real enrollments the generated cases can be pointed at."""

    pool: Pool
    token: str
    user: Any = None
    challenge_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    cases: int = 0

    def pending_id(self) -> str:
        """Return the caller's pending enrollment, starting one if there is none."""
        pending = Enrollment.objects.pending().filter(user=self.user).first()
        if pending is None:
            started = flows.start_enrollment(
                flows.Context.build("api"),
                user=self.user,
                token=validate_access_token(self.token),
            )
            pending = started.enrollment
        return str(pending.id)

    def finished_id(self) -> str:
        """Return the caller's newest finished enrollment (verified, locked, cancelled...)."""
        finished = (
            Enrollment.objects.filter(user=self.user)
            .exclude(status=EnrollmentStatus.PENDING)
            .order_by("-created_at")
            .first()
        )
        return str(finished.id) if finished is not None else self.pending_id()

    def challenge_id(self) -> str:
        """Return a pending challenge enrollment whose challenge token is known."""
        pending = Enrollment.objects.pending().filter(cognito_username="fuzz-challenge").first()
        if pending is None:
            pending = Enrollment.objects.create(
                user=None,
                cognito_username="fuzz-challenge",
                flow=EnrollmentFlow.CHALLENGE,
                expires_at=flows.now() + timedelta(minutes=3),
                # Not a Session Cognito issued: verifying it exercises the rejection path.
                encrypted_credential=crypto.encrypt("not-a-cognito-session"),
                challenge_token_hash=flows.hash_challenge_token(self.challenge_token),
            )
        return str(pending.id)


@pytest.fixture
def keep_test_connection() -> Iterator[None]:
    """Keep the test's database connection across WSGI requests.

    Django's handler closes connections when a request finishes; inside the test transaction
    (autocommit off) that would close it for good. Django's own test client unhooks the same
    receiver.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_target(keep_test_connection: None, pool: Pool, settings: Any) -> FuzzTarget:
    # Other suites test the budgets; here they would turn most cases into 429s.
    settings.COGNITO_MFA_FAILURE_BUDGET = 1_000_000
    settings.COGNITO_MFA_FAILURE_HARD_LIMIT = 1_000_000
    pool.create_user("fuzzer", email="fuzzer@example.com")
    token = pool.access_token("fuzzer")
    target = FuzzTarget(pool=pool, token=token)
    target.user = get_adapter().get_user_for_token(validate_access_token(token))
    return target


# Loaded at collection: generating the schema needs neither the database nor Cognito. (The
# lazy ``schemathesis.pytest.from_fixture`` loader does not run under pytest 9.)
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=30,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case: Any, fuzz_target: FuzzTarget) -> None:
    FailureCounter.objects.all().delete()
    fuzz_target.cases += 1
    # One case in four keeps its generated id; the others name a real enrollment.
    pick = fuzz_target.cases % 4
    if pick and "enrollment_id" in case.path_parameters:
        if case.path.startswith("/api/mfa/challenge/"):
            case.path_parameters["enrollment_id"] = fuzz_target.challenge_id()
            if isinstance(case.body, dict):
                case.body["challenge_token"] = fuzz_target.challenge_token
        elif pick == 3:
            case.path_parameters["enrollment_id"] = fuzz_target.finished_id()
        else:
            case.path_parameters["enrollment_id"] = fuzz_target.pending_id()
    case.call_and_validate(
        headers={"Authorization": f"Bearer {fuzz_target.token}"},
        checks=CHECKS,
    )


def test_schema_documents_every_error_code(client: Any) -> None:
    """Every status the API can answer is in the schema, with its codes."""
    document = client.get("/api/schema/?format=json").json()
    paths = document["paths"]
    verify = paths["/api/mfa/enrollments/{enrollment_id}/verify/"]["post"]
    assert set(verify["responses"]) == {
        "200",
        "400",
        "401",
        "404",
        "409",
        "410",
        "406",
        "413",
        "415",
        "429",
        "502",
        "503",
    }
    assert "`invalid_code`" in verify["responses"]["400"]["description"]
    # Every operation that takes a body documents the oversized-body answer.
    for path, operations in paths.items():
        if "post" in operations:
            assert "`request_too_large`" in operations["post"]["responses"]["413"]["description"], (
                path
            )
    assert "`enrollment_locked`" in verify["responses"]["409"]["description"]
    assert verify["security"] == [{"CognitoAccessToken": []}]
    start = paths["/api/mfa/enrollments/"]["post"]
    assert "`reauthentication_required`" in start["responses"]["401"]["description"]
    scheme = document["components"]["securitySchemes"]["CognitoAccessToken"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    code = document["components"]["schemas"]["VerifyEnrollmentRequest"]["properties"]
    assert code["user_code"]["pattern"] == "^[0-9]{6}$"
    # The challenge endpoints take no bearer token.
    assert paths["/api/mfa/challenge/enrollments/"]["post"]["security"] == [{}]


@pytest.mark.django_db
def test_every_operation_documents_the_406_and_the_415_it_answers(
    client: Any, fuzz_target: FuzzTarget
) -> None:
    """406 (Accept excludes JSON) on every operation, 415 (a body not JSON) on every one that
    takes a body: documented, and answered so."""
    paths = client.get("/api/schema/?format=json").json()["paths"]
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {fuzz_target.token}"}
    checked = 0
    for template, operations in paths.items():
        for method, operation in operations.items():
            if template.startswith("/api/mfa/challenge/"):
                path = template.replace("{enrollment_id}", fuzz_target.challenge_id())
            else:
                path = template.replace("{enrollment_id}", fuzz_target.pending_id())
            send = getattr(client, method)
            refused = send(path, HTTP_ACCEPT="text/html", **bearer)
            assert (refused.status_code, refused.json()["code"]) == (406, "not_acceptable"), path
            assert "`not_acceptable`" in operation["responses"]["406"]["description"], path
            if "requestBody" in operation:
                plain = send(path, "user_code=123456", content_type="text/plain", **bearer)
                assert (plain.status_code, plain.json()["code"]) == (
                    415,
                    "unsupported_media_type",
                ), path
                assert "`unsupported_media_type`" in operation["responses"]["415"]["description"]
            else:
                assert "415" not in operation["responses"], path
            checked += 1
    assert checked >= 9
