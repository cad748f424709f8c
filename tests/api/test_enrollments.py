"""The REST API against in-process moto: enrollment life cycle, ownership, signals."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.test import RequestFactory, override_settings
from rest_framework.test import APIClient

from cognito_mfa import flows
from cognito_mfa.models import AuditEvent, Enrollment
from tests.support.cognito import Pool, count_cognito_calls, fresh_code, wrong_code
from tests.support.enrollments import start_enrollment, verify_enrollment
from tests.support.signals import SignalLog

BASE = "/api/mfa/"


@pytest.fixture
def bob_api(pool: Pool) -> APIClient:
    pool.create_user("bob", email="bob@example.com")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {pool.access_token('bob')}")
    return client


# --- acceptance 4: wrong codes, the lock, verified twice ---------------------------------------


@pytest.mark.django_db
def test_wrong_code_is_invalid_code_with_attempts_remaining(
    alice_api: APIClient, settings: Any
) -> None:
    settings.COGNITO_MFA_MAX_ATTEMPTS = 3
    started = start_enrollment(alice_api)

    response = verify_enrollment(alice_api, started["id"], wrong_code())

    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid_code",
        "detail": response.json()["detail"],
        "attempts_remaining": 2,
    }
    enrollment = Enrollment.objects.get(pk=started["id"])
    assert enrollment.attempts == 1
    assert enrollment.status == "pending"
    assert enrollment.encrypted_credential is not None


@pytest.mark.django_db
def test_max_attempts_wrong_codes_lock_and_wipe_the_credential(
    alice_api: APIClient, settings: Any
) -> None:
    settings.COGNITO_MFA_MAX_ATTEMPTS = 3
    started = start_enrollment(alice_api)

    answers = [verify_enrollment(alice_api, started["id"], wrong_code()) for _ in range(3)]

    assert [a.status_code for a in answers[:2]] == [400, 400]
    assert [a.json()["attempts_remaining"] for a in answers[:2]] == [2, 1]
    # The third wrong code spends the last attempt: still reported as a wrong code, and locks.
    assert answers[2].status_code == 400
    assert answers[2].json()["attempts_remaining"] == 0
    enrollment = Enrollment.objects.get(pk=started["id"])
    assert enrollment.status == "locked"
    assert enrollment.encrypted_credential is None
    assert enrollment.attempts == 3

    # Even the right code cannot open a locked enrollment, and Cognito is not asked.
    with count_cognito_calls() as counter:
        locked = verify_enrollment(alice_api, started["id"], fresh_code())
    assert locked.status_code == 409
    assert locked.json()["code"] == "enrollment_locked"
    assert counter.calls == []
    assert counter.sends == []


@pytest.mark.django_db
def test_verifying_a_verified_enrollment_is_not_pending_without_calling_cognito(
    alice_api: APIClient,
) -> None:
    started = start_enrollment(alice_api)
    assert verify_enrollment(alice_api, started["id"], fresh_code()).status_code == 200

    with count_cognito_calls() as counter:
        again = verify_enrollment(alice_api, started["id"], fresh_code())

    assert again.status_code == 409
    assert again.json()["code"] == "enrollment_not_pending"
    assert counter.calls == []
    assert counter.sends == []


@pytest.mark.django_db
def test_call_counter_sees_cognito_calls(alice_api: APIClient) -> None:
    """The counter used above to prove "no call" does see calls when there are some."""
    started = start_enrollment(alice_api)
    with count_cognito_calls() as counter:
        assert verify_enrollment(alice_api, started["id"], fresh_code()).status_code == 200
    assert counter.calls == ["VerifySoftwareToken", "SetUserMFAPreference"]
    assert counter.sends == ["VerifySoftwareToken", "SetUserMFAPreference"]


@pytest.mark.django_db
def test_verify_counts_a_wrong_code_then_verifies_once(alice_api: APIClient) -> None:
    started = start_enrollment(alice_api)

    wrong = verify_enrollment(alice_api, started["id"], wrong_code())
    right = verify_enrollment(
        alice_api, started["id"], fresh_code(), friendly_device_name="work phone"
    )
    again = verify_enrollment(alice_api, started["id"], fresh_code())

    assert (wrong.status_code, wrong.json()["attempts_remaining"]) == (400, 4)
    assert right.status_code == 200
    assert right.json()["status"] == "verified"
    assert (again.status_code, again.json()["code"]) == (409, "enrollment_not_pending")
    row = Enrollment.objects.get(pk=started["id"])
    assert (row.status, row.attempts, row.friendly_device_name) == ("verified", 1, "work phone")
    assert row.verify_lease_until is None
    assert row.encrypted_credential is None
    assert list(
        AuditEvent.objects.filter(enrollment=row).order_by("id").values_list("kind", "outcome")
    ) == [("started", "ok"), ("verification_failed", "invalid_code"), ("verified", "ok")]


# --- acceptance 5: another user's id answers like an unknown id ----------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "delete", "verify"])
def test_someone_elses_enrollment_is_indistinguishable_from_an_unknown_one(
    alice_api: APIClient, bob_api: APIClient, method: str
) -> None:
    bobs = start_enrollment(bob_api)["id"]
    unknown = str(uuid.uuid4())

    def ask(enrollment_id: str) -> Any:
        if method == "get":
            return alice_api.get(f"{BASE}enrollments/{enrollment_id}/")
        if method == "delete":
            return alice_api.delete(f"{BASE}enrollments/{enrollment_id}/")
        return verify_enrollment(alice_api, enrollment_id, fresh_code())

    with count_cognito_calls() as counter:
        theirs, nobodys = ask(bobs), ask(unknown)
        not_a_uuid = ask("not-a-uuid")

    assert theirs.status_code == nobodys.status_code == not_a_uuid.status_code == 404
    assert theirs.content == nobodys.content == not_a_uuid.content
    assert theirs.json()["code"] == "not_found"
    assert sorted(theirs.headers.items()) == sorted(nobodys.headers.items())
    assert counter.calls == []
    # Bob's enrollment is untouched.
    bob_row = Enrollment.objects.get(pk=bobs)
    assert (bob_row.status, bob_row.attempts) == ("pending", 0)


@pytest.mark.django_db
def test_verify_checks_the_body_before_the_id_so_a_bad_body_tells_nothing_about_it(
    alice_api: APIClient, bob_api: APIClient
) -> None:
    """The body is validated before the enrollment is looked up: a bad body gets the same
    400 whether the id is the caller's, someone else's or nobody's."""
    own, bobs, unknown = (
        start_enrollment(alice_api)["id"],
        start_enrollment(bob_api)["id"],
        str(uuid.uuid4()),
    )
    with count_cognito_calls() as counter:
        answers = [
            alice_api.post(f"{BASE}enrollments/{enrollment_id}/verify/", body, format="json")
            for enrollment_id in (own, bobs, unknown, "not-a-uuid")
            for body in ({"user_code": "12ab56"}, {})
        ]
    assert {answer.status_code for answer in answers} == {400}
    assert len({answer.content for answer in answers[0::2]}) == 1
    assert len({answer.content for answer in answers[1::2]}) == 1
    assert counter.calls == []
    rows = Enrollment.objects.filter(pk__in=[own, bobs])
    assert {(row.attempts, row.verify_lease_until) for row in rows} == {(0, None)}


# --- list, detail, cancel, status, preference ---------------------------------------------------


@pytest.mark.django_db
def test_list_is_newest_first_without_secrets_and_only_the_callers(
    alice_api: APIClient, bob_api: APIClient
) -> None:
    first = start_enrollment(alice_api, friendly_device_name="old phone")
    second = start_enrollment(alice_api, friendly_device_name="new phone")
    start_enrollment(bob_api)

    response = alice_api.get(BASE + "enrollments/")

    assert response.status_code == 200
    listed = response.json()
    assert [item["id"] for item in listed] == [second["id"], first["id"]]
    assert [item["status"] for item in listed] == ["pending", "cancelled"]
    assert set(listed[0]) == {
        "id",
        "status",
        "flow",
        "friendly_device_name",
        "attempts",
        "created_at",
        "expires_at",
        "verified_at",
    }
    assert b"asdfasdfasdf" not in response.content
    assert b"otpauth" not in response.content


@pytest.mark.django_db
def test_detail_shows_one_enrollment_without_secrets(alice_api: APIClient) -> None:
    started = start_enrollment(alice_api, friendly_device_name="phone")

    response = alice_api.get(f"{BASE}enrollments/{started['id']}/")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == started["id"]
    assert body["status"] == "pending"
    assert body["flow"] == "access_token"
    assert body["friendly_device_name"] == "phone"
    assert body["attempts"] == 0
    assert "secret_code" not in body
    assert b"asdfasdfasdf" not in response.content


@pytest.mark.django_db
def test_cancel_a_pending_enrollment(alice_api: APIClient) -> None:
    started = start_enrollment(alice_api)

    with count_cognito_calls() as counter:
        response = alice_api.delete(f"{BASE}enrollments/{started['id']}/")

    assert response.status_code == 204
    assert response.content == b""
    assert counter.calls == []
    row = Enrollment.objects.get(pk=started["id"])
    assert row.status == "cancelled"
    assert row.encrypted_credential is None
    assert row.finished_at is not None
    again = alice_api.delete(f"{BASE}enrollments/{started['id']}/")
    assert again.status_code == 409
    assert again.json()["code"] == "enrollment_not_pending"
    verify_cancelled = verify_enrollment(alice_api, started["id"], fresh_code())
    assert verify_cancelled.status_code == 409
    assert verify_cancelled.json()["code"] == "enrollment_not_pending"


@pytest.mark.django_db
def test_status_reflects_cognito_and_the_pending_enrollment(
    alice_api: APIClient, pool: Pool
) -> None:
    before = alice_api.get(BASE + "status/")
    assert before.status_code == 200
    assert before.json() == {
        "software_token_mfa_enabled": False,
        "preferred_mfa": None,
        "pending_enrollment": None,
    }

    started = start_enrollment(alice_api)
    pending = alice_api.get(BASE + "status/").json()
    assert pending["pending_enrollment"]["id"] == started["id"]
    assert pending["pending_enrollment"]["expires_at"] == started["expires_at"]

    assert verify_enrollment(alice_api, started["id"], fresh_code()).status_code == 200
    after = alice_api.get(BASE + "status/")
    assert after.json() == {
        "software_token_mfa_enabled": True,
        "preferred_mfa": "SOFTWARE_TOKEN_MFA",
        "pending_enrollment": None,
    }
    assert pool.mfa_state("alice")["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA"]


@pytest.mark.django_db
def test_preference_turns_totp_off_and_on(alice_api: APIClient, pool: Pool) -> None:
    started = start_enrollment(alice_api)
    assert verify_enrollment(alice_api, started["id"], fresh_code()).status_code == 200

    off = alice_api.post(BASE + "preference/", {"enabled": False, "preferred": False}, "json")
    assert off.status_code == 200, off.content
    assert off.json()["software_token_mfa_enabled"] is False
    assert "SOFTWARE_TOKEN_MFA" not in pool.mfa_state("alice").get("UserMFASettingList", [])

    on = alice_api.post(BASE + "preference/", {"enabled": True, "preferred": True}, "json")
    assert on.status_code == 200
    assert on.json() == {
        "software_token_mfa_enabled": True,
        "preferred_mfa": "SOFTWARE_TOKEN_MFA",
        "pending_enrollment": None,
    }
    kinds = list(
        AuditEvent.objects.filter(kind="preference_changed")
        .order_by("created_at", "id")
        .values_list("detail", flat=True)
    )
    assert {"enabled": False, "preferred": False} in kinds
    assert {"enabled": True, "preferred": True} in kinds


@pytest.mark.django_db
def test_turning_totp_off_needs_a_recent_sign_in(
    alice_api: APIClient, settings: Any, pool: Pool
) -> None:
    started = start_enrollment(alice_api)
    assert verify_enrollment(alice_api, started["id"], fresh_code()).status_code == 200
    settings.COGNITO_MFA_REAUTH_MAX_AGE = timedelta(microseconds=1)

    with count_cognito_calls() as counter:
        off = alice_api.post(BASE + "preference/", {"enabled": False, "preferred": False}, "json")

    assert off.status_code == 401
    assert off.json()["code"] == "reauthentication_required"
    assert counter.calls == []
    assert pool.mfa_state("alice")["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA"]


# --- one pending enrollment per user ------------------------------------------------------------


@pytest.mark.django_db
def test_a_new_start_cancels_the_older_pending_one(alice_api: APIClient) -> None:
    first = start_enrollment(alice_api)
    second = start_enrollment(alice_api)

    rows = {str(row.pk): row for row in Enrollment.objects.all()}
    assert rows[first["id"]].status == "cancelled"
    assert rows[first["id"]].encrypted_credential is None
    assert rows[second["id"]].status == "pending"
    assert Enrollment.objects.pending().count() == 1
    superseded = AuditEvent.objects.get(enrollment_id=first["id"], kind="cancelled")
    assert superseded.detail == {"reason": "superseded"}
    # The old enrollment can no longer be verified; the new one can.
    assert verify_enrollment(alice_api, first["id"], fresh_code()).status_code == 409
    assert verify_enrollment(alice_api, second["id"], fresh_code()).status_code == 200


@pytest.mark.django_db
def test_database_refuses_a_second_pending_row_for_a_user(alice_api: APIClient) -> None:
    started = start_enrollment(alice_api)
    existing = Enrollment.objects.get(pk=started["id"])

    with pytest.raises(IntegrityError), transaction.atomic():
        Enrollment.objects.create(
            user=existing.user,
            cognito_username="someone-else",
            flow="access_token",
            expires_at=existing.expires_at,
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        Enrollment.objects.create(
            user=None,
            cognito_username=existing.cognito_username,
            flow="access_token",
            expires_at=existing.expires_at,
        )
    # A sign-in challenge row only claims its username: it neither displaces nor is blocked
    # by the proven user's pending enrollment.
    Enrollment.objects.create(
        user=None,
        cognito_username=existing.cognito_username,
        flow="challenge",
        expires_at=existing.expires_at,
    )
    # A finished row of the same user is fine; so is a credential only on a pending row.
    Enrollment.objects.create(
        user=existing.user,
        cognito_username=existing.cognito_username,
        flow="access_token",
        status="cancelled",
        expires_at=existing.expires_at,
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        Enrollment.objects.create(
            user=existing.user,
            cognito_username=existing.cognito_username,
            flow="access_token",
            status="verified",
            expires_at=existing.expires_at,
            encrypted_credential=b"leftover",
        )


# --- the start response ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_responses_are_never_cached(alice_api: APIClient) -> None:
    started = alice_api.post(BASE + "enrollments/", {}, format="json")
    assert started.status_code == 201
    assert started.headers["Cache-Control"] == "no-store"
    body = started.json()
    assert body["secret_code"] == "asdfasdfasdf"
    assert body["status"] == "pending"
    assert body["qr_code_svg"].startswith("data:image/svg+xml")
    assert body["qr_code_png"].startswith("data:image/png;base64,")
    assert "secret=asdfasdfasdf" in body["otpauth_uri"]
    for response in (
        alice_api.get(BASE + "enrollments/"),
        alice_api.get(f"{BASE}enrollments/{body['id']}/"),
        alice_api.get(BASE + "status/"),
        verify_enrollment(alice_api, body["id"], wrong_code()),
    ):
        assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_expires_at_is_the_ttl_when_the_token_lives_longer(
    alice_api: APIClient, settings: Any
) -> None:
    settings.COGNITO_MFA_ENROLLMENT_TTL = timedelta(minutes=7)
    before = datetime.now(UTC)
    started = start_enrollment(alice_api)
    expires_at = datetime.fromisoformat(started["expires_at"].replace("Z", "+00:00"))
    assert before + timedelta(minutes=7) <= expires_at <= datetime.now(UTC) + timedelta(minutes=7)


@pytest.mark.django_db
def test_expires_at_is_capped_by_the_access_tokens_exp(
    alice_api: APIClient, alice: str, settings: Any
) -> None:
    settings.COGNITO_MFA_ENROLLMENT_TTL = timedelta(hours=5)  # moto's tokens live one hour
    exp = jwt.decode(alice, options={"verify_signature": False})["exp"]

    started = start_enrollment(alice_api)

    expires_at = datetime.fromisoformat(started["expires_at"].replace("Z", "+00:00"))
    assert expires_at == datetime.fromtimestamp(exp, tz=UTC)
    row = Enrollment.objects.get(pk=started["id"])
    assert row.expires_at == row.credential_expires_at == datetime.fromtimestamp(exp, tz=UTC)


@pytest.mark.django_db
def test_past_expires_at_answers_expired_without_calling_cognito(alice_api: APIClient) -> None:
    started = start_enrollment(alice_api)
    Enrollment.objects.filter(pk=started["id"]).update(
        expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )

    with count_cognito_calls() as counter:
        response = verify_enrollment(alice_api, started["id"], fresh_code())

    assert response.status_code == 410
    assert response.json()["code"] == "enrollment_expired"
    assert counter.calls == []
    row = Enrollment.objects.get(pk=started["id"])
    assert (row.status, row.encrypted_credential) == ("expired", None)


# --- signals: once, after commit, with the documented kwargs ------------------------------------

COMMON = {"sender", "enrollment", "user", "request", "source"}
PREFERENCE_KWARGS = {"sender", "user", "request", "source", "actor", "enabled", "preferred"}


def _only(log: SignalLog, name: str) -> dict[str, Any]:
    sent = log.named(name)
    assert len(sent) == 1, f"{name} sent {len(sent)} times"
    return sent[0]


@pytest.mark.django_db(transaction=True)
def test_signals_of_a_whole_life_cycle(
    alice_api: APIClient, signal_log: SignalLog, settings: Any
) -> None:
    settings.COGNITO_MFA_MAX_ATTEMPTS = 2
    first = start_enrollment(alice_api, friendly_device_name="first")
    second = start_enrollment(alice_api, friendly_device_name="second")  # cancels the first
    verify_enrollment(alice_api, second["id"], wrong_code())
    verify_enrollment(alice_api, second["id"], wrong_code())  # locks
    third = start_enrollment(alice_api, friendly_device_name="third")
    assert verify_enrollment(alice_api, third["id"], fresh_code()).status_code == 200
    user = get_user_model().objects.get(username="alice")

    started = signal_log.named("enrollment_started")
    assert [str(kw["enrollment"].id) for kw in started] == [first["id"], second["id"], third["id"]]
    for kwargs in started:
        assert set(kwargs) == COMMON
        assert kwargs["sender"] is Enrollment
        assert kwargs["user"] == user
        assert kwargs["source"] == "api"
        assert kwargs["request"].path == BASE + "enrollments/"

    cancelled = _only(signal_log, "enrollment_cancelled")
    assert set(cancelled) == COMMON
    assert str(cancelled["enrollment"].id) == first["id"]
    assert cancelled["user"] == user

    failed = signal_log.named("verification_failed")
    assert len(failed) == 2
    for kwargs, remaining in zip(failed, [1, 0], strict=True):
        assert set(kwargs) == COMMON | {"actor", "code", "attempts_remaining"}
        assert str(kwargs["enrollment"].id) == second["id"]
        assert kwargs["code"] == "invalid_code"
        assert kwargs["attempts_remaining"] == remaining
        assert kwargs["actor"] == user

    locked = _only(signal_log, "enrollment_locked")
    assert set(locked) == COMMON
    assert str(locked["enrollment"].id) == second["id"]
    assert locked["enrollment"].status == "locked"

    verified = _only(signal_log, "software_token_verified")
    assert set(verified) == COMMON | {"actor", "friendly_device_name"}
    assert str(verified["enrollment"].id) == third["id"]
    assert verified["friendly_device_name"] == "third"
    assert verified["actor"] == verified["user"] == user
    assert verified["request"].path.endswith("/verify/")

    preference = _only(signal_log, "mfa_preference_changed")
    assert set(preference) == PREFERENCE_KWARGS
    assert (preference["enabled"], preference["preferred"]) == (True, True)
    assert preference["actor"] == user
    assert signal_log.named("enrollment_expired") == []

    # The order in which they were heard is the order things happened.
    assert [name for name, _ in signal_log.events] == [
        "enrollment_started",
        "enrollment_cancelled",
        "enrollment_started",
        "verification_failed",
        "verification_failed",
        "enrollment_locked",
        "enrollment_started",
        "software_token_verified",
        "mfa_preference_changed",
    ]


@pytest.mark.django_db(transaction=True)
def test_signals_of_cancel_preference_and_expiry(
    alice_api: APIClient, signal_log: SignalLog
) -> None:
    first = start_enrollment(alice_api)
    assert alice_api.delete(f"{BASE}enrollments/{first['id']}/").status_code == 204
    cancelled = _only(signal_log, "enrollment_cancelled")
    assert set(cancelled) == COMMON
    assert cancelled["request"].method == "DELETE"

    second = start_enrollment(alice_api)
    Enrollment.objects.filter(pk=second["id"]).update(
        expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    assert verify_enrollment(alice_api, second["id"], fresh_code()).status_code == 410
    expired = _only(signal_log, "enrollment_expired")
    assert set(expired) == COMMON
    assert str(expired["enrollment"].id) == second["id"]
    assert verify_enrollment(alice_api, second["id"], fresh_code()).status_code == 410
    assert len(signal_log.named("enrollment_expired")) == 1

    third = start_enrollment(alice_api)
    assert verify_enrollment(alice_api, third["id"], fresh_code()).status_code == 200
    signal_log.events.clear()
    response = alice_api.post(BASE + "preference/", {"enabled": True, "preferred": False}, "json")
    assert response.status_code == 200
    changed = _only(signal_log, "mfa_preference_changed")
    assert set(changed) == PREFERENCE_KWARGS
    assert (changed["enabled"], changed["preferred"]) == (True, False)
    assert changed["source"] == "api"
    assert changed["user"].username == "alice"
    assert len(signal_log.events) == 1


@pytest.mark.django_db(transaction=True)
def test_no_signal_when_the_transaction_rolls_back(
    alice_api: APIClient, signal_log: SignalLog
) -> None:
    from cognito_mfa import flows

    started = start_enrollment(alice_api)
    signal_log.events.clear()
    row = Enrollment.objects.get(pk=started["id"])

    def cancel_then_fail() -> None:
        with transaction.atomic():
            flows.cancel_enrollment(row, flows.Context.build("api"))
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        cancel_then_fail()
    assert signal_log.events == []
    assert Enrollment.objects.get(pk=started["id"]).status == "pending"


@pytest.mark.django_db(transaction=True)
def test_signal_request_carries_no_credentials_and_no_body(
    alice_api: APIClient, alice: str, signal_log: SignalLog
) -> None:
    alice_api.cookies["sessionid"] = "cookie-sentinel-value"
    response = alice_api.post(
        "/api/mfa/enrollments/",
        {"friendly_device_name": "body-sentinel"},
        format="json",
        HTTP_X_COGNITO_ACCESS_TOKEN="header-sentinel",
    )
    assert response.status_code == 201, response.content
    (started,) = signal_log.named("enrollment_started")
    request = started["request"]
    assert request.path == "/api/mfa/enrollments/"
    assert request.META["REMOTE_ADDR"]
    for name in ("HTTP_AUTHORIZATION", "HTTP_X_COGNITO_ACCESS_TOKEN", "HTTP_COOKIE"):
        assert name not in request.META
    assert request.COOKIES == {}
    assert request.body == b""
    assert getattr(request, "auth", None) is None
    assert alice not in repr(vars(request))
    assert "body-sentinel" not in repr(vars(request))


@pytest.mark.django_db(transaction=True)
def test_no_database_transaction_is_open_while_cognito_is_called(
    alice_api: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Even a host with ATOMIC_REQUESTS must not hold the lease's row lock across Cognito.
    from django.db import connection

    from cognito_mfa import cognito

    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    seen: list[bool] = []

    def record(**_: Any) -> None:
        seen.append(connection.in_atomic_block)

    events = cognito.get_client().client.meta.events
    events.register("before-call.cognito-idp", record, unique_id="atomic-probe")
    try:
        started = alice_api.post("/api/mfa/enrollments/", {}, format="json").json()
        response = alice_api.post(
            f"/api/mfa/enrollments/{started['id']}/verify/",
            {"user_code": fresh_code()},
            format="json",
        )
    finally:
        events.unregister("before-call.cognito-idp", unique_id="atomic-probe")
    assert response.status_code == 200, response.content
    assert seen
    assert not any(seen)


@pytest.mark.django_db
def test_turning_totp_on_without_a_verified_device_names_the_field(alice_api: APIClient) -> None:
    response = alice_api.post(BASE + "preference/", {"enabled": True, "preferred": True}, "json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid"
    assert body["fields"] == {"enabled": [body["detail"]]}


@override_settings(ALLOWED_HOSTS=["mfa.example.com"])
def test_the_signal_request_keeps_where_it_was_sent_and_what_middleware_added() -> None:
    body = b'{"user_code": "123456"}'
    request = RequestFactory().post(
        "/api/mfa/enrollments/?next=1",
        data=body,
        content_type="application/json",
        secure=True,
        HTTP_HOST="mfa.example.com",
        HTTP_AUTHORIZATION="Bearer token-sentinel",
        HTTP_COOKIE="sessionid=cookie-sentinel",
    )
    request.tenant = "acme"  # type: ignore[attr-defined]  # a host's middleware
    request._cognito_token = "token-sentinel"  # type: ignore[attr-defined]
    clone = flows.without_credentials(request)
    assert clone is not None
    assert clone.build_absolute_uri() == "https://mfa.example.com/api/mfa/enrollments/?next=1"
    assert (clone.method, clone.GET["next"], clone.tenant) == ("POST", "1", "acme")
    assert clone.body == b""
    assert not clone.POST
    assert clone.COOKIES == {}
    assert "HTTP_AUTHORIZATION" not in clone.META
    assert "token-sentinel" not in repr(vars(clone))
    assert request.body == body  # the host's request is left as it was

    plain = HttpRequest()  # not WSGI (ASGI, a host's own): built from its parts
    plain.method, plain.path = "GET", "/api/mfa/status/"
    plain.META = {"HTTP_AUTHORIZATION": "Bearer token-sentinel", "REMOTE_ADDR": "192.0.2.1"}
    plain_clone = flows.without_credentials(plain)
    assert plain_clone is not None
    assert (plain_clone.method, plain_clone.path) == ("GET", "/api/mfa/status/")
    assert plain_clone.META == {"REMOTE_ADDR": "192.0.2.1"}
