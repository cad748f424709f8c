"""Cognito faults injected at botocore's ``before-send`` while the real retry path runs: the app
answers 503 and changes nothing, never counts an unanswered code, and settles an owed MFA
preference on the user's next request, once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.forms.models import model_to_dict
from rest_framework.test import APIClient

from cognito_mfa.cognito import get_client
from cognito_mfa.models import AuditEvent, Enrollment, FailureCounter
from tests.support.cognito import Pool, fresh_code
from tests.support.enrollments import start_enrollment, verify_enrollment
from tests.support.faults import (
    CONNECT_TIMEOUT,
    EVENT,
    READ_TIMEOUT,
    SERVER_ERROR,
    THROTTLED,
    Faults,
)
from tests.support.signals import SignalLog

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fast_retries(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.COGNITO_MFA_MAX_RETRY_ATTEMPTS = 3
    # Standard mode sleeps a random share of 2**attempt seconds between attempts.
    monkeypatch.setattr(
        "botocore.retries.standard.ExponentialBackoff.delay_amount", lambda self, context: 0
    )


@pytest.fixture
def faults(server_pool: Pool) -> Iterator[Faults]:
    injector = Faults()
    events = get_client().client.meta.events
    events.register_first(EVENT, injector)
    yield injector
    events.unregister(EVENT, injector)


@pytest.fixture
def user_api(server_pool: Pool) -> APIClient:
    server_pool.create_user("fay", email="fay@example.com")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {server_pool.access_token('fay')}")
    return client


def _row(enrollment_id: str) -> dict[str, Any]:
    return model_to_dict(Enrollment.objects.get(pk=enrollment_id)) | {
        "credential": bytes(Enrollment.objects.get(pk=enrollment_id).encrypted_credential or b""),
        "lease": Enrollment.objects.get(pk=enrollment_id).verify_lease_until,
    }


def _assert_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.content
    assert response.json()["code"] == "cognito_unavailable"
    assert response["Retry-After"] == "5"


# --- retried operations -------------------------------------------------------------------------


def test_cognito_down_on_start_answers_503_and_changes_nothing(
    user_api: APIClient, faults: Faults, signal_log: SignalLog
) -> None:
    faults.plan("AssociateSoftwareToken", then=CONNECT_TIMEOUT)

    _assert_unavailable(user_api.post("/api/mfa/enrollments/", {}, format="json"))

    assert faults.sends["AssociateSoftwareToken"] == 3  # standard mode: every attempt was made
    assert not Enrollment.objects.exists()
    assert not AuditEvent.objects.exists()
    assert signal_log.events == []


@pytest.mark.parametrize(
    ("operation", "outcomes", "sends"),
    [
        ("GetUser", [SERVER_ERROR], 2),
        ("GetUser", [READ_TIMEOUT, READ_TIMEOUT], 3),
        ("GetUser", [THROTTLED, THROTTLED], 3),
        ("AssociateSoftwareToken", [CONNECT_TIMEOUT], 2),
    ],
)
def test_safe_operations_are_retried_until_cognito_answers(
    user_api: APIClient, faults: Faults, operation: str, outcomes: list[str], sends: int
) -> None:
    faults.plan(operation, *outcomes)

    if operation == "GetUser":
        # A start with a fresh sign-in needs no GetUser; the status endpoint always reads it.
        assert user_api.get("/api/mfa/status/").status_code == 200
    else:
        start_enrollment(user_api)["id"]
        assert Enrollment.objects.filter(status="pending").count() == 1

    assert faults.sends[operation] == sends


def test_a_throttled_start_is_sent_once_and_is_503(user_api: APIClient, faults: Faults) -> None:
    # AssociateSoftwareToken hands out a new key on each send: in a storm a retry would only
    # spend more of the account's quota (the call budget backs off instead).
    faults.plan("AssociateSoftwareToken", then=THROTTLED)

    _assert_unavailable(user_api.post("/api/mfa/enrollments/", {}, format="json"))

    assert faults.sends["AssociateSoftwareToken"] == 1
    assert not Enrollment.objects.exists()


# --- VerifySoftwareToken: never blindly repeated, never counted when unanswered ------------------


@pytest.mark.parametrize("fault", [READ_TIMEOUT, THROTTLED, SERVER_ERROR])
def test_verify_fault_is_sent_once_not_counted_and_changes_nothing(
    user_api: APIClient, faults: Faults, signal_log: SignalLog, fault: str
) -> None:
    enrollment_id = start_enrollment(user_api)["id"]
    before = _row(enrollment_id)
    faults.plan("VerifySoftwareToken", then=fault)

    _assert_unavailable(verify_enrollment(user_api, enrollment_id, fresh_code()))

    # The code may have reached Cognito: a second send could spend it twice.
    assert faults.sends["VerifySoftwareToken"] == 1
    assert _row(enrollment_id) == before
    assert before["attempts"] == 0
    assert before["lease"] is None
    assert not FailureCounter.objects.exists()
    assert not AuditEvent.objects.filter(kind="verification_failed").exists()
    assert signal_log.named("verification_failed") == []

    faults.clear()
    response = verify_enrollment(user_api, enrollment_id, fresh_code())
    assert response.status_code == 200, response.content


def test_verify_connect_timeout_is_retried(user_api: APIClient, faults: Faults) -> None:
    enrollment_id = start_enrollment(user_api)["id"]
    faults.plan("VerifySoftwareToken", CONNECT_TIMEOUT)

    response = verify_enrollment(user_api, enrollment_id, fresh_code())

    # No connection, nothing sent: the one case where repeating the code is safe.
    assert response.status_code == 200, response.content
    assert faults.sends["VerifySoftwareToken"] == 2


def test_cognito_down_on_verify_answers_503_and_changes_nothing(
    user_api: APIClient, faults: Faults, signal_log: SignalLog
) -> None:
    enrollment_id = start_enrollment(user_api)["id"]
    before = _row(enrollment_id)
    events_before = AuditEvent.objects.count()
    faults.plan("VerifySoftwareToken", then=CONNECT_TIMEOUT)

    _assert_unavailable(verify_enrollment(user_api, enrollment_id, fresh_code()))

    assert faults.sends["VerifySoftwareToken"] == 3
    assert _row(enrollment_id) == before
    assert AuditEvent.objects.count() == events_before
    assert [name for name, _ in signal_log.events] == ["enrollment_started"]


# --- the MFA preference owed after a verify ------------------------------------------------------


@pytest.mark.parametrize("next_request", ["status"])
def test_owed_preference_is_completed_once_by_the_next_request(
    server_pool: Pool,
    user_api: APIClient,
    faults: Faults,
    signal_log: SignalLog,
    next_request: str,
) -> None:
    enrollment_id = start_enrollment(user_api)["id"]
    faults.plan("SetUserMFAPreference", then=THROTTLED)

    response = verify_enrollment(user_api, enrollment_id, fresh_code())

    assert response.status_code == 200, response.content
    assert response.json() == {
        "id": enrollment_id,
        "status": "verified",
        "mfa_enabled": False,
        "preferred": False,
    }
    assert faults.sends["SetUserMFAPreference"] == 3
    enrollment = Enrollment.objects.get(pk=enrollment_id)
    assert (enrollment.status, enrollment.preference_pending) == ("verified", True)
    assert not server_pool.mfa_state("fay").get("UserMFASettingList")
    assert len(signal_log.named("software_token_verified")) == 1
    assert signal_log.named("mfa_preference_changed") == []

    def next_call() -> Any:
        if next_request == "status":
            return user_api.get("/api/mfa/status/")
        return user_api.post("/api/mfa/enrollments/", {}, format="json")

    first = next_call()

    assert first.status_code in (200, 201), first.content
    assert faults.sends["AdminSetUserMFAPreference"] == 1
    assert server_pool.mfa_state("fay")["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA"]
    assert server_pool.mfa_state("fay")["PreferredMfaSetting"] == "SOFTWARE_TOKEN_MFA"
    assert not Enrollment.objects.get(pk=enrollment_id).preference_pending
    (changed,) = signal_log.named("mfa_preference_changed")
    assert changed["enabled"] is True
    assert changed["preferred"] is True
    assert changed["user"].username == "fay"
    assert changed["source"] == "api"
    if next_request == "status":
        assert first.json()["software_token_mfa_enabled"] is True
    assert (
        AuditEvent.objects.filter(kind="preference_changed", enrollment_id=enrollment_id).count()
        == 1
    )

    second = next_call()

    assert second.status_code in (200, 201), second.content
    assert faults.sends["AdminSetUserMFAPreference"] == 1  # nothing more was owed
    assert len(signal_log.named("mfa_preference_changed")) == 1


def test_owed_preference_survives_cognito_still_down(
    server_pool: Pool, user_api: APIClient, faults: Faults, signal_log: SignalLog
) -> None:
    enrollment_id = start_enrollment(user_api)["id"]
    faults.plan("SetUserMFAPreference", then=THROTTLED)
    assert verify_enrollment(user_api, enrollment_id, fresh_code()).status_code == 200
    faults.plan("AdminSetUserMFAPreference", then=SERVER_ERROR)

    # Status still answers (from GetUser); the debt stays for a later request.
    response = user_api.get("/api/mfa/status/")

    assert response.status_code == 200, response.content
    assert response.json()["software_token_mfa_enabled"] is False
    assert faults.sends["AdminSetUserMFAPreference"] == 3
    assert Enrollment.objects.get(pk=enrollment_id).preference_pending
    assert signal_log.named("mfa_preference_changed") == []

    faults.clear()
    assert user_api.get("/api/mfa/status/").json()["software_token_mfa_enabled"] is True
    assert len(signal_log.named("mfa_preference_changed")) == 1


def test_turning_totp_off_forgives_an_owed_preference(
    server_pool: Pool, user_api: APIClient, faults: Faults, signal_log: SignalLog
) -> None:
    enrollment_id = start_enrollment(user_api)["id"]
    faults.plan("SetUserMFAPreference", then=THROTTLED)
    assert verify_enrollment(user_api, enrollment_id, fresh_code()).status_code == 200
    faults.clear()
    assert Enrollment.objects.get(pk=enrollment_id).preference_pending

    # The user's explicit "off" (fresh sign-in) wins over the debt from the failed "on".
    off = user_api.post("/api/mfa/preference/", {"enabled": False, "preferred": False}, "json")
    assert off.status_code == 200, off.content

    assert not Enrollment.objects.get(pk=enrollment_id).preference_pending
    status = user_api.get("/api/mfa/status/").json()
    assert status["software_token_mfa_enabled"] is False
    assert faults.sends["AdminSetUserMFAPreference"] == 0
    assert [kwargs["enabled"] for kwargs in signal_log.named("mfa_preference_changed")] == [False]


def test_an_admin_reset_forgives_an_owed_preference(
    server_pool: Pool, user_api: APIClient, faults: Faults
) -> None:
    from cognito_mfa import flows

    enrollment_id = start_enrollment(user_api)["id"]
    faults.plan("SetUserMFAPreference", then=THROTTLED)
    assert verify_enrollment(user_api, enrollment_id, fresh_code()).status_code == 200
    faults.clear()

    flows.reset_totp(flows.Context.build("admin"), "fay", None)

    assert not Enrollment.objects.get(pk=enrollment_id).preference_pending
    assert flows.complete_owed_preferences(flows.Context.build("command")) == (0, 0)
    assert not server_pool.mfa_state("fay").get("UserMFASettingList")
