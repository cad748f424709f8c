"""Two starts of one user whose AssociateSoftwareToken calls cross.

Each AssociateSoftwareToken replaces the user's key in Cognito, so the enrollment left pending
must be the one whose key was asked for last; otherwise the user scans a key Cognito no longer
holds and every code answers ``invalid_code``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from cognito_mfa import flows
from cognito_mfa.cognito import AssociateResult, get_client
from cognito_mfa.models import Enrollment, EnrollmentFlow
from tests.support.enrollments import ENROLLMENTS_URL, start_enrollment

pytestmark = pytest.mark.django_db(transaction=True)


class KeyIssuer:
    """Stand in for Cognito's key per call (moto hands every user the same one): the n-th
    AssociateSoftwareToken returns KEY<n>, and Cognito holds the last one handed out."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.client = get_client()
        self.answer = self.client.associate_software_token
        self.keys: list[str] = []
        self.during_first_call: Any = None
        monkeypatch.setattr(self.client, "associate_software_token", self.associate)

    def associate(self, **params: Any) -> AssociateResult:
        self.answer(**params)  # moto still checks the token
        key = f"KEY{len(self.keys) + 1}"
        self.keys.append(key)
        if len(self.keys) == 1 and self.during_first_call is not None:
            # Cognito has handed out KEY1; its answer is still on the way when another start of
            # the same user runs from beginning to end.
            self.during_first_call()
        return AssociateResult(secret_code=key, session=None)

    @property
    def held(self) -> str:
        return self.keys[-1]


def test_the_pending_enrollment_shows_the_key_cognito_holds_when_two_starts_cross(
    alice_api: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    issuer = KeyIssuer(monkeypatch)
    other_tab: dict[str, Any] = {}
    issuer.during_first_call = lambda: other_tab.update(start_enrollment(alice_api))

    first_tab = start_enrollment(alice_api)

    pending = Enrollment.objects.get(status="pending")
    shown = {first_tab["id"]: first_tab["secret_code"], other_tab["id"]: other_tab["secret_code"]}
    assert shown[str(pending.pk)] == issuer.held
    assert len(issuer.keys) == 3  # the crossed start asked once more
    assert Enrollment.objects.get(pk=other_tab["id"]).status == "cancelled"


def test_a_later_start_asks_for_one_key(
    alice_api: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    start_enrollment(alice_api)
    issuer = KeyIssuer(monkeypatch)

    again = start_enrollment(alice_api)

    assert issuer.keys == ["KEY1"]
    assert again["secret_code"] == issuer.held
    assert Enrollment.objects.get(status="pending").pk.hex == again["id"].replace("-", "")


def test_starts_that_keep_crossing_give_up_with_409_and_change_nothing(
    alice_api: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    older = start_enrollment(alice_api)
    issuer = KeyIssuer(monkeypatch)

    def rewrite_the_older_row(**params: Any) -> AssociateResult:
        # Every time this start asks for a key, the pending row looks freshly written.
        Enrollment.objects.filter(pk=older["id"]).update(created_at=flows.now())
        return issuer.associate(**params)

    monkeypatch.setattr(issuer.client, "associate_software_token", rewrite_the_older_row)

    response = alice_api.post(ENROLLMENTS_URL, {}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "enrollment_not_pending"
    assert len(issuer.keys) == flows.KEY_ASKS
    assert list(Enrollment.objects.values_list("status", flat=True)) == ["pending"]


def test_a_row_stamped_by_a_clock_far_ahead_is_replaced_as_before(
    alice_api: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A host's test travelled forward to start, then came back (or another host's clock runs
    # minutes ahead): the row is stamped in our future, which no crossing can explain. The
    # start replaces it with one key, as it did before starts compared stamps.
    with time_machine.travel(timezone.now() + timedelta(minutes=5)):
        older = start_enrollment(alice_api)
    issuer = KeyIssuer(monkeypatch)

    again = start_enrollment(alice_api)

    assert issuer.keys == ["KEY1"]
    assert again["secret_code"] == issuer.held
    assert Enrollment.objects.get(pk=older["id"]).status == "cancelled"
    assert Enrollment.objects.get(status="pending").pk.hex == again["id"].replace("-", "")


def test_a_sign_in_challenge_row_naming_the_user_does_not_make_the_start_ask_again(
    alice_api: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anyone holding an ``MFA_SETUP`` Session of their own can write a challenge row naming
    this username; it must not cost the user's starts extra key requests or a 409."""
    issuer = KeyIssuer(monkeypatch)
    issuer.during_first_call = lambda: Enrollment.objects.create(
        cognito_username="alice",
        flow=EnrollmentFlow.CHALLENGE,
        created_at=flows.now(),
        expires_at=flows.now() + timedelta(minutes=3),
    )

    started = start_enrollment(alice_api)

    assert issuer.keys == ["KEY1"]
    assert started["secret_code"] == "KEY1"
