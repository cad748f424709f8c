"""The sign-in MFA_SETUP challenge endpoints: authorisation by challenge token, errors,
expiry, throttling, the claimed username, audit events and signals (moto in-process, and a
Stubber for what moto cannot produce)."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import timedelta
from typing import Any

import jwt
import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from rest_framework.test import APIClient

from cognito_mfa import cognito, crypto, flows
from cognito_mfa import exceptions as exc
from cognito_mfa.conf import app_settings
from cognito_mfa.flows import challenge as challenge_flow
from cognito_mfa.flows import clock
from cognito_mfa.models import AuditEvent, Enrollment, EnrollmentStatus, FailureCounter
from tests.support.challenge import (
    NEW_PASSWORD,
    START_URL,
    Spa,
    expected_secret_hash,
    mfa_setup_session,
    start,
    stubbed_app_client,
    verify,
    verify_url,
)
from tests.support.cognito import Pool, fresh_code, wrong_code
from tests.support.signals import SignalLog


@pytest.fixture
def started(api: APIClient, mfa_pool: Pool) -> dict[str, Any]:
    session = mfa_setup_session(mfa_pool, "gina")
    response = start(api, "gina", session)
    assert response.status_code == 201, response.content
    return {**response.json(), "session": session}


# --- no login, the challenge token authorises -------------------------------------------------


@pytest.mark.django_db
def test_start_needs_no_bearer_token_and_ignores_a_bad_one(api: APIClient, mfa_pool: Pool) -> None:
    session = mfa_setup_session(mfa_pool, "hana")
    api.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    response = start(api, "hana", session)
    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_missing_wrong_or_foreign_token_answers_exactly_like_an_unknown_id(
    api: APIClient, mfa_pool: Pool, started: dict[str, Any]
) -> None:
    other_session = mfa_setup_session(mfa_pool, "ivan")
    other = start(api, "ivan", other_session).json()
    code = fresh_code()

    unknown = api.post(
        verify_url(uuid.uuid4()),
        {"challenge_token": started["challenge_token"], "user_code": code},
        format="json",
    )
    assert unknown.status_code == 404
    bodies = [
        # the id alone, without a token
        api.post(verify_url(started["id"]), {"user_code": code}, format="json"),
        # an empty token, as a form left blank sends it
        api.post(verify_url(started["id"]), {"challenge_token": "", "user_code": code}, "json"),
        # a wrong token
        api.post(
            verify_url(started["id"]),
            {"challenge_token": started["challenge_token"][:-2] + "xx", "user_code": code},
            format="json",
        ),
        # another enrollment's (valid) token
        api.post(
            verify_url(started["id"]),
            {"challenge_token": other["challenge_token"], "user_code": code},
            format="json",
        ),
        # not a UUID at all
        api.post(
            verify_url("not-a-uuid"),
            {"challenge_token": started["challenge_token"], "user_code": code},
            format="json",
        ),
    ]
    for response in bodies:
        assert response.status_code == 404
        assert response.content == unknown.content
    assert unknown.json() == {"code": "not_found", "detail": "Not found."}

    # Nothing was attempted against Cognito or counted.
    row = Enrollment.objects.get(pk=started["id"])
    assert (row.status, row.attempts) == ("pending", 0)
    assert row.encrypted_credential is not None


@pytest.mark.django_db
def test_access_token_enrollment_is_not_reachable_through_the_challenge_endpoint(
    api: APIClient, pool: Pool
) -> None:
    pool.create_user("jack")
    bearer = APIClient()
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {pool.access_token('jack')}")
    enrollment_id = bearer.post("/api/mfa/enrollments/", {}, format="json").json()["id"]
    response = api.post(
        verify_url(enrollment_id), {"challenge_token": "x" * 43, "user_code": "123456"}, "json"
    )
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.django_db
def test_bearer_verify_endpoint_does_not_open_a_challenge_enrollment(
    api: APIClient, mfa_pool: Pool
) -> None:
    # kate has a Django account and, later, a valid access token of her own; the bearer
    # endpoint must still not verify her challenge enrollment without its challenge token.
    get_user_model().objects.create(username="kate")
    session = mfa_setup_session(mfa_pool, "kate")
    enrollment_id = start(api, "kate", session).json()["id"]
    mfa_pool.client.admin_set_user_password(
        UserPoolId=mfa_pool.pool_id, Username="kate", Password=NEW_PASSWORD, Permanent=True
    )
    token = Spa(mfa_pool).start_password_sign_in("kate")["AuthenticationResult"]["AccessToken"]
    bearer = APIClient()
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = bearer.post(
        f"/api/mfa/enrollments/{enrollment_id}/verify/", {"user_code": fresh_code()}, "json"
    )
    assert response.status_code == 404
    assert Enrollment.objects.get(pk=enrollment_id).status == "pending"


# --- the challenge token at rest ------------------------------------------------------------


@pytest.mark.django_db
def test_challenge_token_is_stored_only_as_its_sha256_and_compared_in_constant_time(
    api: APIClient, started: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = started["challenge_token"]
    row = Enrollment.objects.get(pk=started["id"])
    assert row.challenge_token_hash == hashlib.sha256(token.encode()).hexdigest()
    for value in Enrollment.objects.filter(pk=row.pk).values().get().values():
        assert token not in str(value)

    compared: list[tuple[str, str]] = []
    real_compare = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real_compare(a, b)

    monkeypatch.setattr(challenge_flow.hmac, "compare_digest", spy)
    assert flows.get_challenge_enrollment(row.pk, token).pk == row.pk
    with pytest.raises(exc.NotFound):
        flows.get_challenge_enrollment(row.pk, token + "x")
    assert compared == [
        (row.challenge_token_hash, row.challenge_token_hash),
        (row.challenge_token_hash, hashlib.sha256((token + "x").encode()).hexdigest()),
    ]


# --- codes, cap, expiry ---------------------------------------------------------------------


@pytest.mark.django_db
def test_wrong_code_then_cap_locks_and_wipes_the_session(
    api: APIClient, started: dict[str, Any], settings: Any
) -> None:
    settings.COGNITO_MFA_MAX_ATTEMPTS = 2
    token = started["challenge_token"]
    first = api.post(
        verify_url(started["id"]), {"challenge_token": token, "user_code": wrong_code()}, "json"
    )
    assert first.status_code == 400
    assert first.json()["code"] == "invalid_code"
    assert first.json()["attempts_remaining"] == 1
    assert started["session"] not in first.content.decode()

    second = api.post(
        verify_url(started["id"]), {"challenge_token": token, "user_code": wrong_code()}, "json"
    )
    assert second.status_code == 400
    assert second.json()["attempts_remaining"] == 0

    # Even the right code opens nothing now.
    third = api.post(
        verify_url(started["id"]), {"challenge_token": token, "user_code": fresh_code()}, "json"
    )
    assert third.status_code == 409
    assert third.json()["code"] == "enrollment_locked"
    row = Enrollment.objects.get(pk=started["id"])
    assert row.status == EnrollmentStatus.LOCKED
    assert row.encrypted_credential is None
    # The enrollment's own cap locked it; "gina" is only a claim, so no per-user budget moved.
    assert not FailureCounter.objects.filter(cognito_username="gina").exists()


@pytest.mark.django_db
def test_malformed_code_is_rejected_before_cognito(api: APIClient, started: dict[str, Any]) -> None:
    for bad in ["12345", "1234567", "١٢٣٤٥٦", " 123456", 123456, None]:
        response = api.post(
            verify_url(started["id"]),
            {"challenge_token": started["challenge_token"], "user_code": bad},
            "json",
        )
        assert response.status_code == 400
        assert response.json()["code"] == "invalid"
    assert Enrollment.objects.get(pk=started["id"]).attempts == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("session_ttl", "enrollment_ttl", "expected"),
    [
        (None, None, timedelta(minutes=3)),  # the default auth-session validity
        (timedelta(minutes=15), None, timedelta(minutes=10)),  # the enrollment TTL is shorter
        (timedelta(seconds=90), timedelta(minutes=10), timedelta(seconds=90)),
        (600, 120, timedelta(seconds=120)),  # seconds are accepted too
    ],
)
def test_expires_at_is_capped_by_the_challenge_session_ttl(
    api: APIClient,
    mfa_pool: Pool,
    settings: Any,
    session_ttl: Any,
    enrollment_ttl: Any,
    expected: timedelta,
) -> None:
    if session_ttl is not None:
        settings.COGNITO_MFA_CHALLENGE_SESSION_TTL = session_ttl
    if enrollment_ttl is not None:
        settings.COGNITO_MFA_ENROLLMENT_TTL = enrollment_ttl
    response = start(api, "lena", mfa_setup_session(mfa_pool, "lena"))
    row = Enrollment.objects.get(pk=response.json()["id"])
    life = row.expires_at - row.created_at
    # The Session's clock starts when Cognito answered, a moment before the row was written.
    assert expected - timedelta(seconds=1) < life <= expected
    # The Session's own end is kept too, from the same setting.
    assert row.credential_expires_at is not None
    session_life = row.credential_expires_at - row.created_at
    assert abs(session_life - app_settings.CHALLENGE_SESSION_TTL) < timedelta(seconds=2)


@pytest.mark.django_db
def test_past_expires_at_answers_410_without_calling_cognito(
    api: APIClient, started: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    row = Enrollment.objects.get(pk=started["id"])
    later = row.expires_at + timedelta(seconds=1)
    monkeypatch.setattr(clock, "now", lambda: later)
    with stubbed_app_client(monkeypatch):  # no responses queued: any Cognito call fails
        response = api.post(
            verify_url(started["id"]),
            {"challenge_token": started["challenge_token"], "user_code": "123456"},
            "json",
        )
    assert response.status_code == 410
    assert response.json()["code"] == "enrollment_expired"
    row.refresh_from_db()
    assert row.status == "expired"
    assert row.encrypted_credential is None


# --- Stubber: what moto cannot produce --------------------------------------------------------

POOL_ID = "us-east-1_Stubbed1"
CLIENT_ID = "stubbedclientid1234567890"
SESSION = "AYABeStubbedMfaSetupSession" + "x" * 40
SESSION_2 = "AYABeStubbedAfterAssociate" + "y" * 40
SESSION_3 = "AYABeStubbedAfterVerify" + "z" * 40


@pytest.fixture
def stub_settings(settings: Any) -> Any:
    settings.COGNITO_MFA_REGION = "us-east-1"
    settings.COGNITO_MFA_USER_POOL_ID = POOL_ID
    settings.COGNITO_MFA_APP_CLIENT_IDS = [CLIENT_ID]
    settings.COGNITO_MFA_APP_CLIENT_SECRET = None
    return settings


def queue_start(stubber: Any) -> None:
    # The start's one Cognito call: the claimed name is looked up nowhere.
    stubber.add_response(
        "associate_software_token",
        {"SecretCode": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "Session": SESSION_2},
        {"Session": SESSION},
    )


@pytest.mark.django_db
def test_expired_session_on_verify_answers_410_and_wipes_the_stored_session(
    api: APIClient, stub_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with stubbed_app_client(monkeypatch) as stubber:
        queue_start(stubber)
        started = start(api, "mona", SESSION).json()
        row = Enrollment.objects.get(pk=started["id"])
        # What continues the challenge is the Session AssociateSoftwareToken returned, kept
        # encrypted together with the claimed name (the row's columns name nobody).
        claim = flows.open_challenge_claim(row, crypto.decrypt(row.encrypted_credential))
        assert (claim.session, claim.cognito_username) == (SESSION_2, "mona")
        assert row.cognito_username == ""
        stubber.add_client_error(
            "verify_software_token",
            service_error_code="NotAuthorizedException",
            service_message="Invalid session for the user, session is expired.",
            http_status_code=400,
            expected_params={"Session": SESSION_2, "UserCode": "123456"},
        )
        response = api.post(
            verify_url(started["id"]),
            {"challenge_token": started["challenge_token"], "user_code": "123456"},
            "json",
        )
        stubber.assert_no_pending_responses()
    assert response.status_code == 410
    assert response.json()["code"] == "enrollment_expired"
    assert "session" not in response.content.decode().lower()  # Cognito's text is not echoed
    row.refresh_from_db()
    assert row.status == EnrollmentStatus.EXPIRED
    assert row.encrypted_credential is None
    assert row.attempts == 0  # not the user's fault: no wrong code counted


@pytest.mark.django_db
def test_confidential_client_sends_the_exact_secret_hash_and_uses_the_fresh_token(
    api: APIClient, stub_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # moto does not check SECRET_HASH on RespondToAuthChallenge(MFA_SETUP): pin it here.
    stub_settings.COGNITO_MFA_APP_CLIENT_SECRET = "s3cr3t-of-the-app-client"
    # Cognito's tokens name the user; the app checks the name matches the claimed one.
    access_token = jwt.encode({"username": "mona", "token_use": "access"}, "k" * 32)
    tokens = {
        "AccessToken": access_token,
        "IdToken": "stub.id.token",
        "RefreshToken": "stub-refresh",
        "ExpiresIn": 3600,
        "TokenType": "Bearer",
    }
    with stubbed_app_client(monkeypatch) as stubber:
        queue_start(stubber)
        started = start(api, "mona", SESSION).json()
        stubber.add_response(
            "verify_software_token",
            {"Status": "SUCCESS", "Session": SESSION_3},
            {"Session": SESSION_2, "UserCode": "654321", "FriendlyDeviceName": "Work phone"},
        )
        stubber.add_response(
            "respond_to_auth_challenge",
            {"AuthenticationResult": tokens, "ChallengeParameters": {}},
            {
                "ClientId": CLIENT_ID,
                "ChallengeName": "MFA_SETUP",
                "Session": SESSION_3,
                "ChallengeResponses": {
                    "USERNAME": "mona",
                    "SECRET_HASH": expected_secret_hash(
                        "mona", CLIENT_ID, "s3cr3t-of-the-app-client"
                    ),
                },
            },
        )
        stubber.add_response(
            "set_user_mfa_preference",
            {},
            {
                "AccessToken": access_token,
                "SoftwareTokenMfaSettings": {"Enabled": True, "PreferredMfa": True},
            },
        )
        response = api.post(
            verify_url(started["id"]),
            {
                "challenge_token": started["challenge_token"],
                "user_code": "654321",
                "friendly_device_name": "Work phone",
            },
            "json",
        )
        stubber.assert_no_pending_responses()
    assert response.status_code == 200, response.content
    assert response.json() == {
        "id": started["id"],
        "status": "verified",
        "session": None,
        "authentication_result": tokens,
    }
    completed = AuditEvent.objects.get(kind="challenge_completed")
    assert (completed.outcome, completed.source) == ("ok", "challenge")


@pytest.mark.django_db
def test_tokens_of_another_user_than_claimed_are_refused(
    api: APIClient, stub_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A caller holding their own MFA_SETUP Session claims someone else's username.
    stub_settings.COGNITO_MFA_APP_CLIENT_SECRET = "s3cr3t-of-the-app-client"
    someone_else = jwt.encode({"username": "mallory", "token_use": "access"}, "k" * 32)
    tokens = {"AccessToken": someone_else, "IdToken": "x.y.z", "ExpiresIn": 3600}
    with stubbed_app_client(monkeypatch) as stubber:
        queue_start(stubber)
        started = start(api, "mona", SESSION).json()
        stubber.add_response("verify_software_token", {"Status": "SUCCESS", "Session": SESSION_3})
        stubber.add_response(
            "respond_to_auth_challenge", {"AuthenticationResult": tokens, "ChallengeParameters": {}}
        )
        response = api.post(
            verify_url(started["id"]),
            {"challenge_token": started["challenge_token"], "user_code": "654321"},
            "json",
        )
        # No SetUserMFAPreference / AdminSetUserMFAPreference was queued: none was sent.
        stubber.assert_no_pending_responses()
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert someone_else not in response.content.decode()


@pytest.mark.django_db
def test_spa_mode_returns_the_session_and_acts_on_no_account_by_name(
    api: APIClient, stub_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without tokens the username is only a claim: no AdminSetUserMFAPreference on it (none is
    # queued, so the Stubber would fail if one were sent); the SPA turns TOTP on itself.
    stub_settings.COGNITO_MFA_CHALLENGE_COMPLETE_AUTH = False
    with stubbed_app_client(monkeypatch) as stubber:
        queue_start(stubber)
        started = start(api, "mona", SESSION).json()
        stubber.add_response(
            "verify_software_token",
            {"Status": "SUCCESS", "Session": SESSION_3},
            {"Session": SESSION_2, "UserCode": "654321"},
        )
        response = api.post(
            verify_url(started["id"]),
            {"challenge_token": started["challenge_token"], "user_code": "654321"},
            "json",
        )
        stubber.assert_no_pending_responses()
    assert response.status_code == 200, response.content
    assert response.json()["session"] == SESSION_3
    assert response.json()["authentication_result"] is None
    assert not AuditEvent.objects.filter(kind="challenge_completed").exists()


@pytest.mark.django_db
def test_status_error_from_cognito_is_a_wrong_code(
    api: APIClient, stub_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with stubbed_app_client(monkeypatch) as stubber:
        queue_start(stubber)
        started = start(api, "mona", SESSION).json()
        stubber.add_response(
            "verify_software_token",
            {"Status": "ERROR"},
            {"Session": SESSION_2, "UserCode": "654321"},
        )
        response = api.post(
            verify_url(started["id"]),
            {"challenge_token": started["challenge_token"], "user_code": "654321"},
            "json",
        )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_code"


# --- the claimed username ---------------------------------------------------------------------


@pytest.mark.django_db
def test_a_session_cannot_be_used_to_act_on_another_user(api: APIClient, mfa_pool: Pool) -> None:
    # olga finished her set-up through the app: TOTP is on for her in Cognito.
    olga = start(api, "olga", mfa_setup_session(mfa_pool, "olga")).json()
    verified = api.post(
        verify_url(olga["id"]),
        {"challenge_token": olga["challenge_token"], "user_code": fresh_code()},
        "json",
    )
    assert verified.status_code == 200, verified.content
    olga_events = AuditEvent.objects.filter(cognito_username="olga").count()
    # A stranger holding a valid MFA_SETUP Session of their own names olga, then nobody: both
    # start alike (a start tells nothing of the named user), and neither row names anyone.
    stranger_session = mfa_setup_session(mfa_pool, "pete")
    claims = [start(api, name, stranger_session) for name in ("olga", "no-such-user")]
    assert [claim.status_code for claim in claims] == [201, 201]
    claim_ids = [claim.json()["id"] for claim in claims]
    assert set(
        Enrollment.objects.filter(pk__in=claim_ids).values_list("cognito_username", "user")
    ) == {("", None)}
    # The stranger's right code proves the Session is pete's, not the named user's: refused
    # like an unknown id, the claim ended, nothing turned on or counted for anyone.
    for claim in claims:
        refused = verify(api, claim.json(), fresh_code())
        assert refused.status_code == 404
        assert refused.json() == {"code": "not_found", "detail": "Not found."}
    assert set(
        Enrollment.objects.filter(pk__in=claim_ids).values_list("status", "cognito_username")
    ) == {("expired", "")}
    assert AuditEvent.objects.filter(cognito_username="olga").count() == olga_events
    assert not AuditEvent.objects.filter(cognito_username="no-such-user").exists()
    assert not FailureCounter.objects.exists()
    assert mfa_pool.mfa_state("olga")["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA"]
    assert not mfa_pool.mfa_state("pete").get("UserMFASettingList")
    assert list(
        Enrollment.objects.exclude(pk__in=claim_ids).values_list("cognito_username", "status")
    ) == [("olga", "verified")]
    # The stranger's own claim still works.
    assert start(api, "pete", stranger_session).status_code == 201


@pytest.mark.django_db
def test_dead_session_on_start_is_refused_and_nothing_stored(
    api: APIClient, mfa_pool: Pool
) -> None:
    mfa_pool.create_user("quinn", permanent=False)
    response = start(api, "quinn", "AYAB-no-such-session-" + "q" * 30)
    assert response.status_code == 401
    assert response.json()["code"] == "token_invalid"
    assert not Enrollment.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {},
        {"username": "x"},
        {"session": "x"},
        {"username": 1, "session": "x"},
        {"username": "x", "session": None},
        {"username": "x", "session": ["x"]},
        {"username": "x", "session": "too-short"},  # Cognito's minimum is 20
        {"username": "x", "session": "s" * 4097},
        {"username": "", "session": "s" * 40},
        {"username": "a b", "session": "s" * 40},
        {"username": "a\nb", "session": "s" * 40},
        {"username": "u" * 129, "session": "s" * 40},
    ],
)
def test_malformed_start_body_is_400_invalid(
    api: APIClient, stub_settings: Any, monkeypatch: pytest.MonkeyPatch, body: Any
) -> None:
    with stubbed_app_client(monkeypatch) as stubber:  # nothing queued: no Cognito call allowed
        response = api.post(START_URL, body, format="json")
        stubber.assert_no_pending_responses()
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


# --- throttle ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_challenge_endpoints_share_a_per_address_throttle(
    mfa_pool: Pool, settings: Any, started: dict[str, Any]
) -> None:
    settings.COGNITO_MFA_THROTTLE_RATES = {"start": None, "verify": None, "challenge": "2/min"}
    cache.clear()
    try:
        first = APIClient(REMOTE_ADDR="198.51.100.7")
        wrong_token = {"challenge_token": "wrong", "user_code": "123456"}
        # A malformed body is answered and not counted: bad input spends no allowance.
        for _ in range(3):
            assert first.post(START_URL, {}, format="json").status_code == 400
        assert first.post(verify_url(started["id"]), wrong_token, "json").status_code == 404
        assert first.post(verify_url(started["id"]), wrong_token, "json").status_code == 404
        # The third well-formed request from this address, on either endpoint, is throttled.
        for response in (
            first.post(
                START_URL, {"username": "gina", "session": started["session"]}, format="json"
            ),
            first.post(
                verify_url(started["id"]),
                {"challenge_token": started["challenge_token"], "user_code": fresh_code()},
                "json",
            ),
        ):
            assert response.status_code == 429
            assert response.json()["code"] == "throttled"
            assert int(response["Retry-After"]) >= 1
        assert Enrollment.objects.get(pk=started["id"]).status == "pending"
        # Another address has its own budget.
        other = APIClient(REMOTE_ADDR="198.51.100.8")
        assert other.post(START_URL, {}, format="json").status_code == 400
    finally:
        cache.clear()


# --- signals and audit events ---------------------------------------------------------------


def audit_rows(enrollment_id: Any) -> list[tuple[Any, ...]]:
    """The enrollment's audit rows: kind, source, outcome, the Cognito user and the site user
    they name, actor, address."""
    return list(
        AuditEvent.objects.filter(enrollment_id=enrollment_id)
        .order_by("id")
        .values_list(
            "kind", "source", "outcome", "cognito_username", "user_id", "actor_id", "ip_address"
        )
    )


@pytest.mark.django_db(transaction=True)
def test_without_a_django_user_events_name_nobody(
    api: APIClient, mfa_pool: Pool, signal_log: SignalLog
) -> None:
    session = mfa_setup_session(mfa_pool, "rosa")
    started = start(api, "rosa", session).json()
    token = started["challenge_token"]
    assert (
        api.post(
            verify_url(started["id"]), {"challenge_token": token, "user_code": wrong_code()}, "json"
        ).status_code
        == 400
    )
    ok = api.post(
        verify_url(started["id"]), {"challenge_token": token, "user_code": fresh_code()}, "json"
    )
    assert ok.status_code == 200, ok.content

    # The challenge never creates a site account: user stays NULL everywhere.
    assert not get_user_model().objects.filter(username="rosa").exists()
    row = Enrollment.objects.get(pk=started["id"])
    assert (row.user, row.verified_by, row.status) == (None, None, "verified")

    (begun,) = signal_log.named("enrollment_started")
    assert (begun["user"], begun["source"], begun["enrollment"].pk) == (None, "challenge", row.pk)
    (failed,) = signal_log.named("verification_failed")
    assert failed["user"] is None
    assert failed["actor"] is None
    assert (failed["source"], failed["code"], failed["attempts_remaining"]) == (
        "challenge",
        "invalid_code",
        4,
    )
    (verified,) = signal_log.named("software_token_verified")
    assert verified["user"] is None
    assert verified["actor"] is None
    assert verified["source"] == "challenge"
    (preference,) = signal_log.named("mfa_preference_changed")
    assert preference["user"] is None
    assert (preference["enabled"], preference["preferred"]) == (True, True)
    assert preference["source"] == "challenge"

    # The claim names nobody until the tokens prove rosa: then her Cognito name, no site user.
    assert audit_rows(row.pk) == [
        ("started", "challenge", "ok", "", None, None, "127.0.0.1"),
        ("verification_failed", "challenge", "invalid_code", "", None, None, "127.0.0.1"),
        ("verified", "challenge", "ok", "rosa", None, None, "127.0.0.1"),
        # The app answered MFA_SETUP itself (the default) and got the tokens.
        ("challenge_completed", "challenge", "ok", "rosa", None, None, "127.0.0.1"),
    ]
    assert row.cognito_username == "rosa"
    assert mfa_pool.mfa_state("rosa")["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA"]


@pytest.mark.django_db(transaction=True)
def test_a_claim_names_no_site_user_until_tokens_prove_it_and_lock_is_signalled(
    api: APIClient, mfa_pool: Pool, signal_log: SignalLog, settings: Any
) -> None:
    settings.COGNITO_MFA_MAX_ATTEMPTS = 1
    sam = get_user_model().objects.create(username="sam", email="sam@example.com")
    started = start(api, "sam", mfa_setup_session(mfa_pool, "sam")).json()
    # The username is only a claim: the label shows what the caller typed, never the e-mail
    # of the site account it names.
    assert "Example%20Site:sam?" in started["otpauth_uri"]
    assert "example.com" not in started["otpauth_uri"]
    response = verify(api, started, wrong_code())
    assert response.status_code == 400
    assert response.json()["attempts_remaining"] == 0

    row = Enrollment.objects.get(pk=started["id"])
    assert (row.user, row.status, row.encrypted_credential) == (None, "locked", None)
    (begun,) = signal_log.named("enrollment_started")
    assert (begun["user"], begun["source"]) == (None, "challenge")
    (failed,) = signal_log.named("verification_failed")
    assert (failed["user"], failed["actor"], failed["source"]) == (None, None, "challenge")
    (locked,) = signal_log.named("enrollment_locked")
    assert (locked["user"], locked["source"]) == (None, "challenge")
    assert locked["enrollment"].pk == row.pk
    assert set(locked) == {"sender", "enrollment", "user", "request", "source"}
    assert signal_log.named("software_token_verified") == []
    # Never proven: no audit row names sam, by Cognito name or site account.
    assert audit_rows(row.pk) == [
        ("started", "challenge", "ok", "", None, None, "127.0.0.1"),
        ("verification_failed", "challenge", "invalid_code", "", None, None, "127.0.0.1"),
        ("locked", "challenge", "enrollment_locked", "", None, None, "127.0.0.1"),
    ]
    assert row.cognito_username == ""
    # Nothing of it shows among the site user's own enrollments.
    assert not sam.cognito_mfa_enrollments.exists()


@pytest.mark.django_db(transaction=True)
def test_tokens_naming_the_claimed_user_attach_the_site_user_at_the_verify(
    api: APIClient, mfa_pool: Pool, signal_log: SignalLog
) -> None:
    sam = get_user_model().objects.create(username="sam", email="sam@example.com")
    FailureCounter.objects.create(cognito_username="sam", consecutive_failures=3)
    started = start(api, "sam", mfa_setup_session(mfa_pool, "sam")).json()
    ok = verify(api, started, fresh_code())
    assert ok.status_code == 200, ok.content
    assert ok.json()["authentication_result"] is not None

    row = Enrollment.objects.get(pk=started["id"])
    assert (row.user, row.verified_by, row.status) == (sam, sam, "verified")
    (begun,) = signal_log.named("enrollment_started")
    assert begun["user"] is None  # still a claim when it started
    (verified,) = signal_log.named("software_token_verified")
    assert (verified["user"], verified["actor"], verified["source"]) == (sam, sam, "challenge")
    (preference,) = signal_log.named("mfa_preference_changed")
    assert (preference["user"], preference["enabled"], preference["preferred"]) == (
        sam,
        True,
        True,
    )
    assert audit_rows(row.pk) == [
        ("started", "challenge", "ok", "", None, None, "127.0.0.1"),
        ("verified", "challenge", "ok", "sam", sam.pk, sam.pk, "127.0.0.1"),
        ("challenge_completed", "challenge", "ok", "sam", sam.pk, sam.pk, "127.0.0.1"),
    ]
    assert row.cognito_username == "sam"
    # A proven success forgets the user's consecutive wrong codes, as any success does.
    assert not FailureCounter.objects.filter(cognito_username="sam").exists()
    assert list(sam.cognito_mfa_enrollments.values_list("status", flat=True)) == ["verified"]


# --- MFAS_CAN_SETUP ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('["SOFTWARE_TOKEN_MFA", "SMS_MFA"]', ["SOFTWARE_TOKEN_MFA", "SMS_MFA"]),  # AWS
        ("['SOFTWARE_TOKEN_MFA']", ["SOFTWARE_TOKEN_MFA"]),  # moto
        (["SOFTWARE_TOKEN_MFA"], ["SOFTWARE_TOKEN_MFA"]),
        ("", []),
        (None, []),
        ("SOFTWARE_TOKEN_MFA", []),
        ("{'a': 1}", []),
        ("__import__('os')", []),
    ],
)
def test_mfas_can_setup_is_parsed_tolerantly(raw: Any, expected: list[str]) -> None:
    assert cognito.parse_mfas_can_setup(raw) == expected


@pytest.mark.django_db(transaction=True)
def test_a_claim_on_someone_mid_sign_in_neither_cancels_nor_enables_anything(
    api: APIClient, mfa_pool: Pool, signal_log: SignalLog
) -> None:
    # olga and pete both meet MFA_SETUP; pete names olga with his own Session.
    olga = start(api, "olga", mfa_setup_session(mfa_pool, "olga")).json()
    claim = start(api, "olga", mfa_setup_session(mfa_pool, "pete"))
    assert claim.status_code == 201  # a Session does not say whose it is, yet
    # olga's enrollment is untouched: a claim supersedes nothing.
    assert Enrollment.objects.get(pk=olga["id"]).status == "pending"
    assert signal_log.named("enrollment_cancelled") == []

    # pete's code is right for his Session, but Cognito's tokens name pete, not olga.
    refused = api.post(
        verify_url(claim.json()["id"]),
        {"challenge_token": claim.json()["challenge_token"], "user_code": fresh_code()},
        "json",
    )
    assert refused.status_code == 404
    assert refused.json()["code"] == "not_found"
    claimed = Enrollment.objects.get(pk=claim.json()["id"])
    assert (claimed.status, claimed.encrypted_credential) == ("expired", None)
    assert signal_log.named("software_token_verified") == []
    assert not mfa_pool.mfa_state("olga").get("UserMFASettingList")

    # olga finishes her own set-up as if nothing happened.
    verified = api.post(
        verify_url(olga["id"]),
        {"challenge_token": olga["challenge_token"], "user_code": fresh_code()},
        "json",
    )
    assert verified.status_code == 200, verified.content
    assert mfa_pool.mfa_state("olga")["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA"]
    assert not mfa_pool.mfa_state("pete").get("UserMFASettingList")
