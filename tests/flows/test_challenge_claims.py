"""The sign-in challenge's username is a claim: a stranger holding a live ``MFA_SETUP`` Session of
their own may name anyone who has no MFA yet. Until Cognito's tokens prove the name, the claim
must not touch the named user: not their wrong-code budget, not their list of enrollments, not
the signals or audit rows that name them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from cognito_mfa.models import AuditEvent, Enrollment, EnrollmentStatus, FailureCounter
from tests.support.challenge import mfa_setup_session, start, stubbed_app_client, verify
from tests.support.cognito import Pool, fresh_code, wrong_code
from tests.support.signals import SignalLog


@pytest.mark.django_db
def test_a_strangers_wrong_codes_do_not_back_the_named_user_off(
    api: APIClient, mfa_pool: Pool
) -> None:
    olga_session = mfa_setup_session(mfa_pool, "olga")
    pete_session = mfa_setup_session(mfa_pool, "pete")
    # Past the budget (10 by default) over three enrollments: each locks at its own cap.
    for _ in range(3):
        claim = start(api, "olga", pete_session)
        assert claim.status_code == 201, claim.content
        for _ in range(5):
            assert verify(api, claim.json(), wrong_code()).status_code in (400, 409)
    assert not FailureCounter.objects.filter(cognito_username="olga").exists()
    assert start(api, "olga", olga_session).status_code == 201


@pytest.mark.django_db
def test_a_strangers_claim_is_not_among_the_named_users_enrollments(
    api: APIClient, mfa_pool: Pool
) -> None:
    mfa_pool.create_user("alice", email="alice@example.com")  # signs in, no MFA yet
    alice = APIClient()
    alice.credentials(HTTP_AUTHORIZATION=f"Bearer {mfa_pool.access_token('alice')}")
    own = alice.post("/api/mfa/enrollments/", {}, format="json").json()
    claim = start(api, "alice", mfa_setup_session(mfa_pool, "pete"), friendly_device_name="Call us")
    assert claim.status_code == 201
    claim_id = claim.json()["id"]

    assert [row["id"] for row in alice.get("/api/mfa/enrollments/").json()] == [own["id"]]
    assert alice.get("/api/mfa/status/").json()["pending_enrollment"]["id"] == own["id"]
    detail = alice.get(f"/api/mfa/enrollments/{claim_id}/")
    cancel = alice.delete(f"/api/mfa/enrollments/{claim_id}/")
    assert (detail.status_code, cancel.status_code) == (404, 404)
    assert Enrollment.objects.get(pk=claim_id).status == EnrollmentStatus.PENDING
    assert Enrollment.objects.get(pk=claim_id).user is None
    # The audit trail records the claimed name, and no site user.
    assert list(AuditEvent.objects.filter(enrollment_id=claim_id).values_list("user_id")) == [
        (None,)
    ]


@pytest.mark.django_db(transaction=True)
def test_without_server_side_completion_a_verified_claim_names_nobody(
    api: APIClient, mfa_pool: Pool, settings: Any, signal_log: SignalLog
) -> None:
    settings.COGNITO_MFA_CHALLENGE_COMPLETE_AUTH = False
    olga = get_user_model().objects.create(username="olga")
    mfa_pool.create_user("olga", permanent=False)
    claim = start(api, "olga", mfa_setup_session(mfa_pool, "pete"), friendly_device_name="evil")
    assert claim.status_code == 201
    verified = verify(api, claim.json(), fresh_code())
    assert verified.status_code == 200, verified.content
    assert verified.json()["authentication_result"] is None

    row = Enrollment.objects.get(pk=claim.json()["id"])
    assert (row.status, row.user, row.verified_by) == ("verified", None, None)
    assert [kw["user"] for kw in signal_log.named("enrollment_started")] == [None]
    assert [kw["user"] for kw in signal_log.named("software_token_verified")] == [None]
    # The app turned nothing on (the SPA does, with its own new token): nothing is announced.
    assert signal_log.named("mfa_preference_changed") == []
    assert not mfa_pool.mfa_state("pete").get("UserMFASettingList")
    assert not olga.cognito_mfa_enrollments.exists()


@pytest.mark.django_db(transaction=True)
def test_a_refused_server_side_completion_names_nobody(
    api: APIClient, settings: Any, monkeypatch: pytest.MonkeyPatch, signal_log: SignalLog
) -> None:
    """Cognito refuses ``RespondToAuthChallenge`` when the USERNAME is not the Session's user:
    the verified token is the stranger's, and no tokens prove the claimed name."""
    settings.COGNITO_MFA_REGION = "us-east-1"
    settings.COGNITO_MFA_USER_POOL_ID = "us-east-1_Stubbed1"
    settings.COGNITO_MFA_APP_CLIENT_IDS = ["stubbedclientid1234567890"]
    settings.COGNITO_MFA_APP_CLIENT_SECRET = None
    mona = get_user_model().objects.create(username="mona")
    session = "AYABstubbed-mfa-setup-session-" + "s" * 40
    with stubbed_app_client(monkeypatch) as stubber:
        stubber.add_response(
            "associate_software_token",
            {"SecretCode": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "Session": session + "2"},
        )
        started = start(api, "mona", session).json()
        stubber.add_response("verify_software_token", {"Status": "SUCCESS", "Session": session})
        stubber.add_client_error(
            "respond_to_auth_challenge",
            service_error_code="NotAuthorizedException",
            service_message="Invalid session for the user.",
        )
        response = verify(api, started, "654321")
        stubber.assert_no_pending_responses()
    assert response.status_code == 200, response.content
    row = Enrollment.objects.get(pk=started["id"])
    assert (row.status, row.user, row.verified_by) == ("verified", None, None)
    assert [kw["user"] for kw in signal_log.named("software_token_verified")] == [None]
    assert signal_log.named("mfa_preference_changed") == []
    assert not mona.cognito_mfa_enrollments.exists()


@pytest.mark.django_db
def test_a_dead_session_tells_nothing_about_the_named_users_budget(
    api: APIClient, mfa_pool: Pool
) -> None:
    mfa_pool.create_user("olga", permanent=False)
    FailureCounter.objects.create(
        cognito_username="olga",
        consecutive_failures=11,
        blocked_until=timezone.now() + timedelta(minutes=5),
    )
    junk = "AYAB-not-a-session-" + "j" * 30
    backing_off, unknown = start(api, "olga", junk), start(api, "nobody-at-all", junk)
    assert backing_off.status_code == unknown.status_code == 401
    assert backing_off.json() == unknown.json()


@pytest.mark.django_db
def test_the_upgrade_makes_earlier_unproven_claims_name_nobody(django_user_model: Any) -> None:
    import importlib

    from django.apps import apps

    migration = importlib.import_module(
        "cognito_mfa.migrations.0004_unproven_challenge_claims_name_nobody"
    )
    olga = django_user_model.objects.create(username="olga")
    expires = timezone.now() + timedelta(minutes=3)

    def row(flow: str, status: str) -> Enrollment:
        return Enrollment.objects.create(
            user=olga, cognito_username="olga", flow=flow, status=status, expires_at=expires
        )

    claims = [row("challenge", status) for status in ("pending", "locked", "expired")]
    verified, own = row("challenge", "verified"), row("access_token", "cancelled")
    migration.unproven_claims_name_nobody(apps, None)
    assert [Enrollment.objects.get(pk=claim.pk).user for claim in claims] == [None] * 3
    assert Enrollment.objects.get(pk=verified.pk).user == olga
    assert Enrollment.objects.get(pk=own.pk).user == olga


@pytest.mark.django_db
def test_the_start_tells_nothing_of_the_named_user_and_the_row_names_nobody(
    api: APIClient, mfa_pool: Pool
) -> None:
    """With a live MFA_SETUP Session of one's own, a start naming a user without MFA, one naming
    nobody and one naming a user with MFA answer alike: same status, same body shape, the same
    Cognito calls (so the same timing class), and the pool's PreventUserExistenceErrors holds.
    What is stored names none of them."""
    from tests.support.cognito import count_cognito_calls

    mfa_pool.create_user("olga-no-mfa", permanent=False)
    # gina set up TOTP through the app at her first sign-in.
    gina = start(api, "gina-with-mfa", mfa_setup_session(mfa_pool, "gina-with-mfa")).json()
    assert verify(api, gina, fresh_code()).status_code == 200
    assert mfa_pool.mfa_state("gina-with-mfa")["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA"]
    own_session = mfa_setup_session(mfa_pool, "pete")
    names = ("olga-no-mfa", "nobody-at-all", "gina-with-mfa")

    answers, calls = [], []
    for name in names:
        with count_cognito_calls() as counter:
            answers.append(start(api, name, own_session))
        calls.append(counter.calls)
    assert [answer.status_code for answer in answers] == [201, 201, 201]
    bodies = [answer.json() for answer in answers]
    assert [sorted(body) for body in bodies] == [sorted(bodies[0])] * 3
    assert [[type(body[key]) for key in sorted(body)] for body in bodies] == [
        [type(bodies[0][key]) for key in sorted(bodies[0])]
    ] * 3
    assert calls == [["AssociateSoftwareToken"]] * 3

    # Nothing stored names the claimed users: not the rows, not their audit rows.
    claim_ids = [body["id"] for body in bodies]
    rows = list(Enrollment.objects.filter(pk__in=claim_ids).values())
    events = list(AuditEvent.objects.filter(enrollment_id__in=claim_ids).values())
    assert (len(rows), len(events)) == (3, 3)
    assert {(row["cognito_username"], row["user_id"]) for row in rows} == {("", None)}
    stored = repr(rows) + repr(events)
    for name in names:
        assert name not in stored


def test_a_claim_is_read_from_its_sealed_document_or_from_a_row_written_before_sealing() -> None:
    from cognito_mfa import flows

    sealed = Enrollment(flow="challenge", cognito_username="")
    claim = flows.open_challenge_claim(sealed, flows.seal_challenge_claim("AYAB-s", "olga"))
    assert (claim.session, claim.cognito_username) == ("AYAB-s", "olga")
    assert "AYAB-s" not in repr(claim)
    assert "olga" not in repr(claim)
    # A row written before claims were sealed: the bare Session, the claim in its column.
    legacy = Enrollment(flow="challenge", cognito_username="olga")
    claim = flows.open_challenge_claim(legacy, "AYABlegacy-session")
    assert (claim.session, claim.cognito_username) == ("AYABlegacy-session", "olga")
