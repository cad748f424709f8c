"""A verify in flight owns its enrollment: nothing else ends the row under it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from cognito_mfa import exceptions as exc
from cognito_mfa import flows
from cognito_mfa.flows import verify
from cognito_mfa.models import Enrollment, FailureCounter
from tests.support.enrollments import ENROLLMENTS_URL, start_enrollment

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def short_lease(settings: Any) -> None:
    # The lease lasts one call with its retries: (connect + read) x attempts + 2 s = 2.2 s.
    settings.COGNITO_MFA_CONNECT_TIMEOUT = 0.1
    settings.COGNITO_MFA_READ_TIMEOUT = 0.1
    settings.COGNITO_MFA_MAX_RETRY_ATTEMPTS = 1


def _start(api: APIClient) -> Enrollment:
    return Enrollment.objects.get(pk=start_enrollment(api)["id"])


def _hold_lease(enrollment: Enrollment, seconds: float) -> None:
    until = timezone.now() + timedelta(seconds=seconds)
    Enrollment.objects.filter(pk=enrollment.pk).update(verify_lease_until=until)


def test_a_new_start_waits_for_the_verify_in_flight(
    alice_api: APIClient, short_lease: None
) -> None:
    old = _start(alice_api)
    _hold_lease(old, 0.4)

    new = _start(alice_api)  # waits out the lease, then supersedes the old row

    assert Enrollment.objects.get(pk=old.pk).status == "cancelled"
    assert Enrollment.objects.get(pk=new.pk).status == "pending"


def test_a_new_start_gives_up_while_a_verify_holds_the_row(
    alice_api: APIClient, short_lease: None
) -> None:
    old = _start(alice_api)
    _hold_lease(old, 60)

    response = alice_api.post(ENROLLMENTS_URL, {}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "enrollment_not_pending"
    assert list(Enrollment.objects.values_list("pk", "status")) == [(old.pk, "pending")]


def test_expiry_leaves_a_row_whose_verify_is_in_flight_to_that_verify(
    alice_api: APIClient,
) -> None:
    enrollment = _start(alice_api)
    _hold_lease(enrollment, 30)

    assert flows.expire_enrollment(enrollment, flows.Context.build("command")) is False
    assert Enrollment.objects.get(pk=enrollment.pk).status == "pending"


def test_a_wrong_code_answered_after_the_row_ended_changes_nothing_but_counts(
    alice_api: APIClient, alice: str
) -> None:
    enrollment = _start(alice_api)
    context = flows.Context.build("api")
    lease = timezone.now() + timedelta(seconds=30)
    Enrollment.objects.filter(pk=enrollment.pk).update(verify_lease_until=lease)
    # Meanwhile (the lease ran out in real life) someone else ended the row.
    Enrollment.objects.filter(pk=enrollment.pk).update(
        status="cancelled", encrypted_credential=None, verify_lease_until=None
    )

    with pytest.raises(exc.EnrollmentNotPending):
        verify._record_wrong_code(enrollment, context, lease)

    row = Enrollment.objects.get(pk=enrollment.pk)
    assert (row.status, row.attempts) == ("cancelled", 0)
    assert FailureCounter.objects.get(cognito_username="alice").consecutive_failures == 1
