"""Step-up: replacing or turning off an existing TOTP needs a recent sign-in.

moto stamps ``auth_time`` with the current time at sign-in and never expires its tokens, so
time-machine moves the clock (the app's, PyJWT's and moto's alike) past
``COGNITO_MFA_REAUTH_MAX_AGE``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from rest_framework.test import APIClient

from cognito_mfa import exceptions as exc
from cognito_mfa import flows
from cognito_mfa.models import AuditEvent, Enrollment
from cognito_mfa.tokens import AccessToken
from tests.support.cognito import Pool, count_cognito_calls, fresh_code
from tests.support.signals import SignalLog
from tests.support.users import give_existing_totp, sign_in, totp_enabled

pytestmark = pytest.mark.django_db

MUTATING = ("AssociateSoftwareToken", "SetUserMFAPreference", "VerifySoftwareToken")


def _bearer(token: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api


def _later(minutes: float) -> time_machine.travel:
    # tick=True: the clock keeps running from there, so moto's TOTP window stays current.
    return time_machine.travel(datetime.now(UTC) + timedelta(minutes=minutes), tick=True)


@pytest.fixture
def bob(pool: Pool) -> str:
    """A user whose Cognito account already has a verified, enabled TOTP."""
    pool.create_user("bob", email="bob@example.com")
    give_existing_totp(pool, "bob")
    return "bob"


def test_replacing_totp_with_a_stale_sign_in_is_refused_without_touching_cognito(
    pool: Pool, bob: str, signal_log: SignalLog
) -> None:
    token = sign_in(pool, bob)
    with _later(16), count_cognito_calls() as counter:
        response = _bearer(token).post(
            "/api/mfa/enrollments/", {"friendly_device_name": "new phone"}, format="json"
        )
    assert response.status_code == 401, response.content
    assert response.json()["code"] == "reauthentication_required"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response["Cache-Control"] == "no-store"
    # Reading the MFA state is fine; nothing that changes it may have been sent.
    assert counter.counts["GetUser"] == 1
    assert not any(counter.counts[name] for name in MUTATING), counter.calls
    assert not Enrollment.objects.exists()
    assert not AuditEvent.objects.exists()
    assert signal_log.events == []
    assert totp_enabled(pool, bob)


def test_replacing_totp_with_a_recent_sign_in_starts_without_reading_cognito(
    pool: Pool, bob: str
) -> None:
    token = sign_in(pool, bob)
    with _later(14), count_cognito_calls() as counter:
        response = _bearer(token).post("/api/mfa/enrollments/", {}, format="json")
    assert response.status_code == 201, response.content
    # A fresh sign-in may replace a TOTP anyway, so the decision costs no GetUser.
    assert counter.counts == {"AssociateSoftwareToken": 1}
    # The old device stays on until the new one is verified.
    assert totp_enabled(pool, bob)


def test_signing_in_again_lifts_the_step_up(pool: Pool, bob: str) -> None:
    stale = sign_in(pool, bob)
    with _later(30):
        assert _bearer(stale).post("/api/mfa/enrollments/").status_code == 401
        fresh = sign_in(pool, bob)
        started = _bearer(fresh).post("/api/mfa/enrollments/", {}, format="json")
        assert started.status_code == 201, started.content
        verified = _bearer(fresh).post(
            f"/api/mfa/enrollments/{started.json()['id']}/verify/",
            {"user_code": fresh_code()},
            format="json",
        )
    assert verified.status_code == 200, verified.content
    assert verified.json()["status"] == "verified"


def test_first_enrollment_needs_no_step_up(pool: Pool, alice: str) -> None:
    with _later(45), count_cognito_calls() as counter:
        response = _bearer(alice).post("/api/mfa/enrollments/", {}, format="json")
    assert response.status_code == 201, response.content
    assert counter.counts == {"GetUser": 1, "AssociateSoftwareToken": 1}


def test_turning_totp_off_with_a_stale_sign_in_is_refused_without_touching_cognito(
    pool: Pool, bob: str, signal_log: SignalLog
) -> None:
    token = sign_in(pool, bob)
    with _later(16), count_cognito_calls() as counter:
        response = _bearer(token).post(
            "/api/mfa/preference/", {"enabled": False, "preferred": False}, format="json"
        )
    assert response.status_code == 401, response.content
    assert response.json()["code"] == "reauthentication_required"
    assert counter.calls == []
    assert totp_enabled(pool, bob)
    assert not AuditEvent.objects.exists()
    assert signal_log.named("mfa_preference_changed") == []


def test_turning_totp_off_with_a_recent_sign_in_works(
    pool: Pool, bob: str, signal_log: SignalLog
) -> None:
    token = sign_in(pool, bob)
    with _later(10), count_cognito_calls() as counter:
        response = _bearer(token).post(
            "/api/mfa/preference/", {"enabled": False, "preferred": False}, format="json"
        )
    assert response.status_code == 200, response.content
    assert response.json()["software_token_mfa_enabled"] is False
    assert counter.counts["SetUserMFAPreference"] == 1
    assert not totp_enabled(pool, bob)


def test_turning_totp_on_or_preferring_it_needs_no_step_up(pool: Pool, bob: str) -> None:
    token = sign_in(pool, bob)
    # 50 minutes: well past the step-up limit, still inside the token's one-hour exp.
    with _later(50):
        response = _bearer(token).post(
            "/api/mfa/preference/", {"enabled": True, "preferred": False}, format="json"
        )
    assert response.status_code == 200, response.content
    assert response.json()["software_token_mfa_enabled"] is True


def test_the_limit_follows_the_setting(pool: Pool, bob: str, settings: Any) -> None:
    settings.COGNITO_MFA_REAUTH_MAX_AGE = timedelta(minutes=2)
    token = sign_in(pool, bob)
    with _later(3):
        response = _bearer(token).post(
            "/api/mfa/preference/", {"enabled": False, "preferred": False}, format="json"
        )
    assert response.status_code == 401
    settings.COGNITO_MFA_REAUTH_MAX_AGE = 600  # seconds are accepted too
    with _later(3):
        response = _bearer(token).post(
            "/api/mfa/preference/", {"enabled": False, "preferred": False}, format="json"
        )
    assert response.status_code == 200, response.content


def _token(auth_time: datetime | None) -> AccessToken:
    return AccessToken(
        raw="not-a-real-token",
        username="carol",
        sub="sub",
        client_id="client",
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        auth_time=auth_time,
        claims={},
    )


def test_a_token_without_auth_time_counts_as_stale() -> None:
    with pytest.raises(exc.ReauthenticationRequired):
        flows.require_recent_authentication(_token(None))
    assert flows.is_recent_authentication(_token(datetime.now(UTC) - timedelta(minutes=1)))
    assert not flows.is_recent_authentication(_token(datetime.now(UTC) - timedelta(minutes=16)))


def test_a_user_protected_by_sms_needs_a_recent_sign_in_to_add_a_totp(
    pool: Pool, signal_log: SignalLog
) -> None:
    """A stale token must not put a TOTP (soon preferred) in place of the user's SMS MFA."""
    pool.create_user("sam")
    token = sign_in(pool, "sam")
    pool.client.admin_set_user_mfa_preference(
        UserPoolId=pool.pool_id,
        Username="sam",
        SMSMfaSettings={"Enabled": True, "PreferredMfa": True},
    )
    with _later(16), count_cognito_calls() as counter:
        response = _bearer(token).post("/api/mfa/enrollments/", {}, format="json")
    assert response.status_code == 401, response.content
    assert response.json()["code"] == "reauthentication_required"
    assert not any(counter.counts[name] for name in MUTATING), counter.calls
    assert not Enrollment.objects.exists()
    assert signal_log.events == []


def test_a_user_protected_by_email_otp_needs_a_recent_sign_in_to_add_a_totp(
    pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto knows no EMAIL_OTP: Cognito's GetUser answer is stood in for."""
    from cognito_mfa.cognito import CognitoClient, MFAState

    pool.create_user("emma")
    token = sign_in(pool, "emma")
    listed = MFAState(software_token_mfa_enabled=False, preferred_mfa=None, mfa_methods=())
    monkeypatch.setattr(CognitoClient, "get_user", lambda self, **kwargs: listed)
    with _later(16):
        assert _bearer(token).post("/api/mfa/enrollments/", {}, format="json").status_code == 201
    Enrollment.objects.all().delete()
    listed = MFAState(
        software_token_mfa_enabled=False, preferred_mfa="EMAIL_OTP", mfa_methods=("EMAIL_OTP",)
    )
    with _later(16):
        response = _bearer(token).post("/api/mfa/enrollments/", {}, format="json")
    assert response.status_code == 401, response.content
    assert response.json()["code"] == "reauthentication_required"


def test_an_owed_turn_on_counts_as_an_existing_totp(pool: Pool) -> None:
    """A verify whose SetUserMFAPreference failed: Cognito does not list TOTP yet, but the
    user has one, and a stale token must not replace it."""
    pool.create_user("owen")
    token = sign_in(pool, "owen")
    api = _bearer(token)
    started = api.post("/api/mfa/enrollments/", {}, format="json").json()
    from cognito_mfa.cognito import CognitoClient

    def refuse(self: Any, **kwargs: Any) -> None:
        raise exc.CognitoUnavailable()

    original = CognitoClient.set_user_mfa_preference
    CognitoClient.set_user_mfa_preference = refuse  # type: ignore[method-assign]
    try:
        verified = api.post(
            f"/api/mfa/enrollments/{started['id']}/verify/",
            {"user_code": fresh_code()},
            format="json",
        )
    finally:
        CognitoClient.set_user_mfa_preference = original  # type: ignore[method-assign]
    assert verified.status_code == 200, verified.content
    assert Enrollment.objects.get(pk=started["id"]).preference_pending
    assert not totp_enabled(pool, "owen")

    with _later(16), count_cognito_calls() as counter:
        response = api.post("/api/mfa/enrollments/", {}, format="json")
    assert response.status_code == 401, response.content
    assert response.json()["code"] == "reauthentication_required"
    assert counter.counts["AssociateSoftwareToken"] == 0
