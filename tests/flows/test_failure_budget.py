"""The per-user failure budget: consecutive wrong codes across enrollments, exponential
back-off (429 ``throttled`` with ``Retry-After``), a hard limit, reset after success."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from rest_framework.test import APIClient

from cognito_mfa import flows
from cognito_mfa.cognito import get_client
from cognito_mfa.conf import app_settings
from cognito_mfa.models import Enrollment, FailureCounter
from tests.support.cognito import Pool, totp_code, wrong_code
from tests.support.enrollments import ENROLLMENTS_URL, start_enrollment, verify_enrollment
from tests.support.faults import EVENT, Faults

pytestmark = pytest.mark.django_db


@pytest.fixture
def sends(pool: Pool) -> Iterator[Faults]:
    """Count what reaches Cognito (nothing is injected)."""
    counter = Faults()
    events = get_client().client.meta.events
    events.register_first(EVENT, counter)
    yield counter
    events.unregister(EVENT, counter)


@pytest.fixture
def clock() -> Iterator[Any]:
    with time_machine.travel(datetime.now(UTC), tick=False) as traveller:
        yield traveller


def _assert_throttled(response: Any, retry_after: int, *, reset_required: bool = False) -> None:
    assert response.status_code == 429, response.content
    assert response.json()["code"] == "throttled"
    assert response["Retry-After"] == str(retry_after)
    # Only the hard limit says so: a back-off wears off by itself.
    assert response.json().get("reset_required", False) is reset_required


def test_backoff_doubles_survives_a_new_enrollment_and_resets_after_success(
    settings: Any, clock: Any, alice_api: APIClient, sends: Faults
) -> None:
    settings.COGNITO_MFA_FAILURE_BUDGET = 3
    settings.COGNITO_MFA_FAILURE_BACKOFF_BASE = timedelta(seconds=30)
    settings.COGNITO_MFA_MAX_ATTEMPTS = 5
    first = start_enrollment(alice_api)["id"]

    for remaining in (4, 3, 2):  # within the budget: plain wrong codes
        response = verify_enrollment(alice_api, first, wrong_code())
        assert response.status_code == 400
        assert response.json()["attempts_remaining"] == remaining
    assert FailureCounter.objects.get(cognito_username="alice").blocked_until is None

    assert verify_enrollment(alice_api, first, wrong_code()).status_code == 400  # 1 over: 30 s
    verifies = sends.sends["VerifySoftwareToken"]
    _assert_throttled(verify_enrollment(alice_api, first, totp_code()), 31)
    # A new enrollment does not escape it.
    _assert_throttled(alice_api.post(ENROLLMENTS_URL, {}, format="json"), 31)
    assert sends.sends["VerifySoftwareToken"] == verifies  # refused before Cognito

    clock.shift(timedelta(seconds=31))
    locked = verify_enrollment(alice_api, first, wrong_code())  # 2 over: 60 s; the enrollment locks
    assert locked.status_code == 400
    assert locked.json()["attempts_remaining"] == 0
    _assert_throttled(alice_api.post(ENROLLMENTS_URL, {}, format="json"), 61)

    clock.shift(timedelta(seconds=61))
    second = start_enrollment(alice_api)["id"]
    assert verify_enrollment(alice_api, second, wrong_code()).status_code == 400  # 3 over: 120 s
    _assert_throttled(verify_enrollment(alice_api, second, totp_code()), 121)
    assert FailureCounter.objects.get(cognito_username="alice").consecutive_failures == 6

    clock.shift(timedelta(seconds=121))
    assert verify_enrollment(alice_api, second, totp_code()).status_code == 200
    assert not FailureCounter.objects.filter(cognito_username="alice").exists()

    third = start_enrollment(alice_api)["id"]
    assert verify_enrollment(alice_api, third, wrong_code()).status_code == 400
    assert FailureCounter.objects.get(cognito_username="alice").blocked_until is None


def test_never_more_than_the_hard_limit_of_consecutive_failures(
    settings: Any, clock: Any, pool: Pool, alice_api: APIClient, sends: Faults
) -> None:
    settings.COGNITO_MFA_FAILURE_BUDGET = 1000  # no back-off: only the hard limit stops it
    settings.COGNITO_MFA_MAX_ATTEMPTS = 50
    assert app_settings.FAILURE_HARD_LIMIT == 100  # the default

    for _ in range(2):
        enrollment_id = start_enrollment(alice_api)["id"]
        for _ in range(50):
            assert verify_enrollment(alice_api, enrollment_id, wrong_code()).status_code == 400
    assert Enrollment.objects.filter(status="locked").count() == 2
    assert FailureCounter.objects.get(cognito_username="alice").consecutive_failures == 100
    assert sends.sends["VerifySoftwareToken"] == 100

    _assert_throttled(alice_api.post(ENROLLMENTS_URL, {}, format="json"), 3600, reset_required=True)

    # Time does not wear the hard limit off (a fresh sign-in two days later: still refused).
    clock.shift(timedelta(days=2))
    alice_api.credentials(HTTP_AUTHORIZATION=f"Bearer {pool.access_token('alice')}")
    _assert_throttled(alice_api.post(ENROLLMENTS_URL, {}, format="json"), 3600, reset_required=True)
    assert sends.sends["VerifySoftwareToken"] == 100

    # Until the help desk resets it.
    flows.reset_failure_budget("alice")
    start_enrollment(alice_api)
