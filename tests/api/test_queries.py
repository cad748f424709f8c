"""SQL queries per endpoint: a budget per request, whatever the number of rows.

The budgets count statements; each endpoint that writes may also open one transaction (its
BEGIN/COMMIT, or SAVEPOINT/RELEASE inside the test's transaction), which
``django_assert_max_num_queries`` sees as two more queries. The user already has a site
account (the adapter's lookup is one of the counted statements).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from cognito_mfa.flows import verify_lease
from cognito_mfa.models import Enrollment, EnrollmentFlow, EnrollmentStatus, FailureCounter
from tests.support.cognito import fresh_code, wrong_code
from tests.support.enrollments import start_enrollment

pytestmark = pytest.mark.django_db

BUDGET = {
    "start": 6,
    # The owned row is read, then its lease claimed by compare-and-set: two statements where
    # an UPDATE ... RETURNING would be one, a form the ORM does not have.
    "verify": 6,
    "status": 2,
    "list": 2,
    "detail": 2,
    "cancel": 4,
    # a start that cancels the older pending enrollment: its UPDATE and audit row on top
    "start_replacing": 8,
}
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")


@pytest.fixture
def counted(django_assert_max_num_queries: Any) -> Callable[..., Any]:
    """``with counted("verify"):`` — fail if the block exceeds the endpoint's budget."""

    @contextmanager
    def block(endpoint: str, transactions: int = 1) -> Iterator[None]:
        budget = BUDGET[endpoint]
        with django_assert_max_num_queries(budget + 2 * transactions) as captured:
            yield
        sent = [
            query["sql"]
            for query in captured.captured_queries
            if not query["sql"].upper().startswith(TRANSACTION_CONTROL)
        ]
        assert len(sent) <= budget, "\n".join(sent)

    return block


@pytest.fixture
def known_alice(alice_api: APIClient) -> APIClient:
    """Alice with a site account already (her first request created it)."""
    assert alice_api.get("/api/mfa/status/").status_code == 200
    return alice_api


def test_start_and_verify_stay_within_budget(known_alice: APIClient, counted: Any) -> None:
    with counted("start"):
        enrollment_id = start_enrollment(known_alice)["id"]
    with counted("verify"):
        response = known_alice.post(
            f"/api/mfa/enrollments/{enrollment_id}/verify/",
            {"user_code": fresh_code()},
            format="json",
        )
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "verified"


def test_starting_again_cancels_within_budget(known_alice: APIClient, counted: Any) -> None:
    first = start_enrollment(known_alice)["id"]
    with counted("start_replacing"):
        start_enrollment(known_alice)["id"]
    assert Enrollment.objects.get(pk=first).status == EnrollmentStatus.CANCELLED


def test_status_detail_and_cancel_stay_within_budget(known_alice: APIClient, counted: Any) -> None:
    enrollment_id = start_enrollment(known_alice)["id"]
    with counted("status", transactions=0):
        status = known_alice.get("/api/mfa/status/").json()
    assert status["pending_enrollment"]["id"] == enrollment_id
    with counted("detail", transactions=0):
        assert known_alice.get(f"/api/mfa/enrollments/{enrollment_id}/").status_code == 200
    with counted("cancel"):
        assert known_alice.delete(f"/api/mfa/enrollments/{enrollment_id}/").status_code == 204


@pytest.mark.parametrize("rows", [1, 120])
def test_list_is_two_queries_whatever_the_rows(
    known_alice: APIClient, counted: Any, django_user_model: Any, rows: int
) -> None:
    user = django_user_model.objects.get(username="alice")
    now = timezone.now()
    Enrollment.objects.bulk_create(
        Enrollment(
            user=user,
            cognito_username="alice",
            flow=EnrollmentFlow.ACCESS_TOKEN,
            status=EnrollmentStatus.CANCELLED,
            created_at=now - timedelta(seconds=index),
            expires_at=now - timedelta(seconds=index) + timedelta(minutes=10),
        )
        for index in range(rows)
    )
    with counted("list", transactions=0):
        listed = known_alice.get("/api/mfa/enrollments/").json()
    assert len(listed) == min(rows, 50)


def test_a_success_after_wrong_codes_resets_the_counter(known_alice: APIClient) -> None:
    enrollment_id = start_enrollment(known_alice)["id"]
    url = f"/api/mfa/enrollments/{enrollment_id}/verify/"
    assert known_alice.post(url, {"user_code": wrong_code()}, format="json").status_code == 400
    assert FailureCounter.objects.get(cognito_username="alice").consecutive_failures == 1
    assert known_alice.post(url, {"user_code": fresh_code()}, format="json").status_code == 200
    assert not FailureCounter.objects.filter(cognito_username="alice").exists()


def test_a_wrong_code_counted_while_waiting_for_the_lease_is_reset_too(
    known_alice: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No counter when the verify starts; another request holds the lease and counts a wrong
    # code meanwhile. The success must still reset it.
    enrollment_id = start_enrollment(known_alice)["id"]
    Enrollment.objects.filter(pk=enrollment_id).update(
        verify_lease_until=timezone.now() + timedelta(milliseconds=150)
    )
    real_sleep = verify_lease.time.sleep

    def other_request_counts_a_wrong_code(seconds: float) -> None:
        FailureCounter.objects.get_or_create(
            cognito_username="alice", defaults={"consecutive_failures": 1}
        )
        real_sleep(seconds)

    monkeypatch.setattr(verify_lease.time, "sleep", other_request_counts_a_wrong_code)
    url = f"/api/mfa/enrollments/{enrollment_id}/verify/"
    assert known_alice.post(url, {"user_code": fresh_code()}, format="json").status_code == 200
    assert not FailureCounter.objects.filter(cognito_username="alice").exists()
