"""The Django admin: enrollment list, the help desk's actions, permissions, no secrets on pages."""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse

from cognito_mfa import crypto, flows
from cognito_mfa.cognito import MFAState, get_client
from cognito_mfa.flows import admin as admin_flows
from cognito_mfa.models import AuditEvent, Enrollment, FailureCounter
from tests.support.admin import (
    change_url,
    changelist_url,
    confirm_action,
    make_staff,
    messages_of,
    run_action,
    verify_url,
    verify_with_code,
)
from tests.support.cognito import MOTO_SECRET, Pool, count_cognito_calls, fresh_code, wrong_code
from tests.support.enrollments import start_via_api
from tests.support.faults import CONNECT_TIMEOUT, Faults
from tests.support.faults import EVENT as FAULT_EVENT
from tests.support.signals import SignalLog


@pytest.fixture
def helpdesk() -> Any:
    return make_staff("helpdesk")


@pytest.fixture
def admin_client(helpdesk: Any) -> Client:
    client = Client()
    client.force_login(helpdesk)
    return client


@pytest.fixture
def alice_enrollment(pool: Pool) -> tuple[Enrollment, str, str]:
    return start_via_api(pool, "alice", "Alice's phone")


# --- the list -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_changelist_lists_filters_and_searches(
    admin_client: Client, pool: Pool, alice_enrollment: Any
) -> None:
    enrollment = alice_enrollment[0]
    start_via_api(pool, "bob")
    page = admin_client.get(changelist_url())
    assert page.status_code == 200
    html = page.content.decode()
    for column in ("column-cognito_user", "column-status", "column-attempts"):
        assert column in html
    assert "Alice&#x27;s phone" in html

    by_email = admin_client.get(changelist_url(), {"q": "alice@example.com"})
    assert list(by_email.context["cl"].result_list) == [enrollment]
    by_name = admin_client.get(changelist_url(), {"q": "bob"})
    assert [row.cognito_username for row in by_name.context["cl"].result_list] == ["bob"]
    pending = admin_client.get(changelist_url(), {"status__exact": "pending"})
    assert pending.context["cl"].result_count == 2
    verified = admin_client.get(changelist_url(), {"status__exact": "verified"})
    assert verified.context["cl"].result_count == 0
    challenge = admin_client.get(changelist_url(), {"flow__exact": "challenge"})
    assert challenge.context["cl"].result_count == 0


@pytest.mark.django_db
def test_rows_are_read_only_outside_actions(
    admin_client: Client, helpdesk: Any, alice_enrollment: Any
) -> None:
    enrollment = alice_enrollment[0]
    change_url = reverse("admin:cognito_mfa_enrollment_change", args=[enrollment.pk])
    view = admin_client.get(change_url)
    assert view.status_code == 200
    assert 'name="_save"' not in view.content.decode()
    assert admin_client.post(change_url, {"status": "verified"}).status_code == 403
    assert admin_client.get(reverse("admin:cognito_mfa_enrollment_add")).status_code == 403
    enrollment.refresh_from_db()
    assert enrollment.status == "pending"

    # Even a superuser cannot delete a pending row (cancel it instead) nor bulk-delete.
    helpdesk.is_superuser = True
    helpdesk.save()
    delete_url = reverse("admin:cognito_mfa_enrollment_delete", args=[enrollment.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert "delete_selected" not in admin_client.get(changelist_url()).content.decode()
    assert Enrollment.objects.filter(pk=enrollment.pk).exists()


# --- Verify device with code --------------------------------------------------------------------


@pytest.mark.django_db
def test_verify_page_shows_who_and_until_when(admin_client: Client, alice_enrollment: Any) -> None:
    enrollment = alice_enrollment[0]
    page = admin_client.get(verify_url(enrollment.pk))
    assert page.status_code == 200
    assert page.template_name[0].endswith("enrollment/verify_device.html")
    html = page.content.decode()
    assert "alice" in html
    assert "alice@example.com" in html
    assert page.context["valid_until"] == min(
        enrollment.expires_at, enrollment.credential_expires_at
    )
    assert page.context["attempts_remaining"] == 5
    assert 'name="user_code"' in html
    assert 'name="friendly_device_name"' in html
    # The form posts to the page's own URL, not to the changelist's action machinery.
    assert '<form method="post" id="cognito-mfa-verify-form" novalidate>' in html
    assert 'name="action"' not in html
    assert 'name="_selected_action"' not in html
    assert f'href="{change_url(enrollment.pk)}"' in html  # the breadcrumbs and "take me back"


@pytest.mark.django_db
def test_the_action_and_the_change_page_lead_to_the_verify_page(
    admin_client: Client, alice_enrollment: Any
) -> None:
    enrollment = alice_enrollment[0]
    chosen = run_action(admin_client, "verify_device", [enrollment.pk])
    assert chosen.status_code == 302
    assert chosen["Location"] == verify_url(enrollment.pk)
    change_page = admin_client.get(change_url(enrollment.pk)).content.decode()
    assert f'href="{verify_url(enrollment.pk)}"' in change_page

    # Once the row is no longer pending the change page offers no verify.
    flows.cancel_enrollment(enrollment, flows.Context.build("admin"))
    assert (
        verify_url(enrollment.pk)
        not in admin_client.get(change_url(enrollment.pk)).content.decode()
    )


@pytest.mark.django_db
def test_verify_success_turns_cognito_mfa_on(
    admin_client: Client, helpdesk: Any, pool: Pool, alice_enrollment: Any
) -> None:
    enrollment = alice_enrollment[0]
    code = fresh_code()
    response = verify_with_code(
        admin_client, enrollment.pk, user_code=code, friendly_device_name="Desk phone"
    )
    assert response.status_code == 302
    assert response["Location"] == change_url(enrollment.pk)
    assert any("is verified and TOTP MFA is on" in text for text in messages_of(response))

    enrollment.refresh_from_db()
    assert enrollment.status == "verified"
    assert enrollment.verified_by == helpdesk
    assert enrollment.friendly_device_name == "Desk phone"
    assert enrollment.encrypted_credential is None
    state = pool.mfa_state("alice")
    assert state["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA"]
    assert state["PreferredMfaSetting"] == "SOFTWARE_TOKEN_MFA"

    entry = LogEntry.objects.get(object_id=str(enrollment.pk))
    assert entry.user == helpdesk
    assert code not in entry.change_message
    assert code not in entry.object_repr
    event = AuditEvent.objects.get(enrollment=enrollment, kind="verified")
    assert (event.source, event.actor) == ("admin", helpdesk)


@pytest.mark.django_db
def test_wrong_code_counts_an_attempt_and_shows_the_form_again(
    admin_client: Client, helpdesk: Any, alice_enrollment: Any
) -> None:
    enrollment = alice_enrollment[0]
    code = wrong_code()
    response = verify_with_code(admin_client, enrollment.pk, user_code=code)
    assert response.status_code == 200  # the form again, for the corrected code
    assert "4 attempts remain" in " ".join(messages_of(response))
    assert response.context["attempts_remaining"] == 4
    assert code not in response.content.decode()
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.attempts) == ("pending", 1)
    assert FailureCounter.objects.get(cognito_username="alice").consecutive_failures == 1
    event = AuditEvent.objects.get(enrollment=enrollment, kind="verification_failed")
    assert (event.source, event.actor, event.outcome) == ("admin", helpdesk, "invalid_code")
    entry = LogEntry.objects.get(object_id=str(enrollment.pk))
    assert code not in entry.change_message


@pytest.mark.django_db
def test_a_code_cognito_could_not_check_changes_nothing_and_the_history_says_so(
    admin_client: Client, alice_enrollment: Any
) -> None:
    enrollment = alice_enrollment[0]
    faults = Faults()
    faults.plan("VerifySoftwareToken", then=CONNECT_TIMEOUT)
    events = get_client().client.meta.events
    events.register_first(FAULT_EVENT, faults)
    code = fresh_code()
    try:
        response = verify_with_code(admin_client, enrollment.pk, user_code=code)
    finally:
        events.unregister(FAULT_EVENT, faults)
    assert response.status_code == 302
    assert response["Location"] == change_url(enrollment.pk)
    (said,) = messages_of(response)
    assert said.startswith("Alice could not be verified: "), said
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.attempts) == ("pending", 0)
    assert not AuditEvent.objects.filter(enrollment=enrollment, kind="verification_failed")
    # The help desk's own history still shows that a code was tried, and why it came to
    # nothing; never the code.
    entry = LogEntry.objects.get(object_id=str(enrollment.pk))
    assert entry.get_change_message() == (
        "Verification with a code did not complete (cognito_unavailable)."
    )
    assert code not in entry.change_message


@pytest.mark.django_db
def test_fifth_wrong_code_locks(admin_client: Client, alice_enrollment: Any) -> None:
    enrollment = alice_enrollment[0]
    for expected_attempts in range(1, 5):
        verify_with_code(admin_client, enrollment.pk, user_code=wrong_code())
        enrollment.refresh_from_db()
        assert (enrollment.status, enrollment.attempts) == ("pending", expected_attempts)
    last = verify_with_code(admin_client, enrollment.pk, user_code=wrong_code())
    assert last.status_code == 302
    assert last["Location"] == change_url(enrollment.pk)
    assert any("the enrollment is locked" in text for text in messages_of(last))
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.attempts) == ("locked", 5)
    assert enrollment.encrypted_credential is None

    # A right code afterwards changes nothing: the row is no longer pending, and the page
    # says so instead of showing the form (or failing).
    with count_cognito_calls() as counter:
        after = verify_with_code(admin_client, enrollment.pk, user_code=fresh_code())
        shown = admin_client.get(verify_url(enrollment.pk))
    assert counter.calls == []
    for response in (after, shown):
        assert response.status_code == 302
        assert response["Location"] == change_url(enrollment.pk)
        assert any("is not pending" in text for text in messages_of(response))
    enrollment.refresh_from_db()
    assert enrollment.status == "locked"


@pytest.mark.django_db(transaction=True)
def test_admin_verify_signals_name_the_admin(
    admin_client: Client, helpdesk: Any, alice_enrollment: Any, signal_log: SignalLog
) -> None:
    enrollment = alice_enrollment[0]
    verify_with_code(admin_client, enrollment.pk, user_code=wrong_code())
    verify_with_code(admin_client, enrollment.pk, user_code=fresh_code())
    (failed,) = signal_log.named("verification_failed")
    assert (failed["source"], failed["actor"], failed["code"]) == (
        "admin",
        helpdesk,
        "invalid_code",
    )
    assert failed["attempts_remaining"] == 4
    (verified,) = signal_log.named("software_token_verified")
    assert (verified["source"], verified["actor"]) == ("admin", helpdesk)
    assert verified["user"].username == "alice"
    (preference,) = signal_log.named("mfa_preference_changed")
    assert (preference["source"], preference["enabled"]) == ("admin", True)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "code", ["12345", "1234567", "12 456", "abcdef", "\u0661\u0662\u0663\u0664\u0665\u0666", ""]
)
def test_malformed_code_never_reaches_cognito(
    admin_client: Client, alice_enrollment: Any, code: str
) -> None:
    enrollment = alice_enrollment[0]
    response = verify_with_code(admin_client, enrollment.pk, user_code=code)
    assert response.status_code == 200
    assert response.context["form"].errors["user_code"]
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.attempts) == ("pending", 0)
    assert not AuditEvent.objects.filter(kind="verification_failed").exists()


@pytest.mark.django_db
def test_staff_without_the_permission_neither_sees_nor_posts_verify(
    alice_enrollment: Any,
) -> None:
    enrollment = alice_enrollment[0]
    clerk = make_staff("clerk", ("view_enrollment", "change_enrollment"))
    client = Client()
    client.force_login(clerk)
    page = client.get(changelist_url()).content.decode()
    assert 'value="verify_device"' not in page
    assert 'value="cancel_enrollments"' in page  # the other actions are there

    assert verify_url(enrollment.pk) not in client.get(change_url(enrollment.pk)).content.decode()

    with count_cognito_calls() as counter:
        shown = run_action(client, "verify_device", [enrollment.pk])
        posted = confirm_action(client, "verify_device", [enrollment.pk], user_code=fresh_code())
        for response in (shown, posted):
            assert response.status_code in (200, 302)
            assert response.get("Location") != verify_url(enrollment.pk)
            assert "verify_device.html" not in str(getattr(response, "template_name", ""))
        # The page itself refuses them, before it looks the row up.
        page = client.get(verify_url(enrollment.pk))
        submitted = verify_with_code(client, enrollment.pk, user_code=fresh_code())
    for response in (page, submitted):
        assert response.status_code == 403
        assert "verify_device.html" not in str(getattr(response, "template_name", ""))
    assert counter.calls == []
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.attempts) == ("pending", 0)
    assert not AuditEvent.objects.filter(source="admin").exists()


@pytest.mark.django_db
def test_a_changelist_post_carrying_a_code_verifies_nothing(
    admin_client: Client, alice_enrollment: Any
) -> None:
    """The changelist never takes a code: the action only leads to the verify page."""
    enrollment = alice_enrollment[0]
    with count_cognito_calls() as counter:
        for submit in (run_action, confirm_action):
            response = submit(
                admin_client,
                "verify_device",
                [enrollment.pk],
                user_code=fresh_code(),
                friendly_device_name="Sneaky phone",
            )
            assert response.status_code == 302
            assert response["Location"] == verify_url(enrollment.pk)
    assert counter.calls == []
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.attempts) == ("pending", 0)
    assert enrollment.friendly_device_name == "Alice's phone"
    assert not AuditEvent.objects.filter(source="admin").exists()
    assert not LogEntry.objects.exists()


@pytest.mark.django_db
def test_two_selected_rows_are_refused(
    admin_client: Client, pool: Pool, alice_enrollment: Any
) -> None:
    enrollment = alice_enrollment[0]
    other, _, _ = start_via_api(pool, "bob")
    response = run_action(admin_client, "verify_device", [enrollment.pk, other.pk])
    assert response.status_code == 302
    assert messages_of(response) == ["Select exactly one pending enrollment to verify."]
    posted = confirm_action(
        admin_client, "verify_device", [enrollment.pk, other.pk], user_code=fresh_code()
    )
    assert posted.status_code == 302
    assert Enrollment.objects.filter(status="pending", attempts=0).count() == 2


@pytest.mark.django_db
def test_an_admin_cannot_verify_their_own_enrollment(pool: Pool) -> None:
    enrollment, _, _ = start_via_api(pool, "carol")
    carol = make_staff("carol")  # the same Django user the API mapped the token to
    client = Client()
    client.force_login(carol)
    with count_cognito_calls() as counter:
        shown = client.get(verify_url(enrollment.pk))
        response = verify_with_code(client, enrollment.pk, user_code=fresh_code())
    assert counter.calls == []
    for answer in (shown, response):
        assert answer.status_code == 302
        assert answer["Location"] == change_url(enrollment.pk)
        assert any("your own enrollment" in text for text in messages_of(answer))
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.attempts) == ("pending", 0)
    assert (
        "UserMFASettingList" not in pool.mfa_state("carol")
        or not pool.mfa_state("carol")["UserMFASettingList"]
    )


# --- Cancel -------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_cancel_asks_then_cancels(
    admin_client: Client, helpdesk: Any, pool: Pool, signal_log: SignalLog
) -> None:
    enrollment, _, _ = start_via_api(pool, "dave")
    page = run_action(admin_client, "cancel_enrollments", [enrollment.pk])
    assert page.status_code == 200
    assert "dave" in page.content.decode()
    enrollment.refresh_from_db()
    assert enrollment.status == "pending"  # nothing happens before the confirmation

    done = confirm_action(admin_client, "cancel_enrollments", [enrollment.pk])
    assert done.status_code == 302
    assert messages_of(done) == ["Cancelled 1 enrollment."]
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.encrypted_credential) == ("cancelled", None)
    (sent,) = signal_log.named("enrollment_cancelled")
    assert sent["source"] == "admin"
    event = AuditEvent.objects.get(enrollment=enrollment, kind="cancelled")
    assert (event.source, event.actor) == ("admin", helpdesk)
    assert LogEntry.objects.filter(object_id=str(enrollment.pk)).count() == 1

    again = run_action(admin_client, "cancel_enrollments", [enrollment.pk])
    assert messages_of(again)[-1] == "None of the selected enrollments is pending."


# --- Reset TOTP ---------------------------------------------------------------------------------


def _record_admin_delete_software_token(calls: list[dict[str, Any]]) -> None:
    """Answer AdminDeleteSoftwareToken in-process (moto does not implement it) and record it."""

    class _Http:
        status_code = 200
        headers: dict[str, str] = {}

    def answer(params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        calls.append(json.loads(params["body"]))
        return _Http(), {"ResponseMetadata": {"HTTPStatusCode": 200}}

    boto = get_client().client
    boto.meta.events.register(
        "before-call.cognito-identity-provider.AdminDeleteSoftwareToken", answer
    )


@pytest.mark.django_db(transaction=True)
def test_reset_totp_turns_mfa_off_and_forgets_failures(
    admin_client: Client, helpdesk: Any, pool: Pool, signal_log: SignalLog
) -> None:
    enrollment, _, _ = start_via_api(pool, "erin")
    verify_with_code(admin_client, enrollment.pk, user_code=fresh_code())
    assert pool.mfa_state("erin")["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA"]
    FailureCounter.objects.create(cognito_username="erin", consecutive_failures=7)
    calls: list[dict[str, Any]] = []
    _record_admin_delete_software_token(calls)
    signal_log.events.clear()

    page = run_action(admin_client, "reset_totp", [enrollment.pk])
    assert page.status_code == 200
    assert "erin" in page.content.decode()
    assert pool.mfa_state("erin")["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA"]

    done = confirm_action(admin_client, "reset_totp", [enrollment.pk])
    assert done.status_code == 302
    assert messages_of(done) == ["TOTP MFA was turned off for 1 user."]
    state = pool.mfa_state("erin")
    assert not state.get("UserMFASettingList")
    assert not state.get("PreferredMfaSetting")
    assert calls == [{"UserPoolId": pool.pool_id, "Username": "erin"}]
    assert not FailureCounter.objects.filter(cognito_username="erin").exists()
    (sent,) = signal_log.named("mfa_preference_changed")
    assert (sent["source"], sent["actor"], sent["enabled"], sent["preferred"]) == (
        "admin",
        helpdesk,
        False,
        False,
    )
    assert sent["user"].username == "erin"
    event = AuditEvent.objects.get(kind="mfa_reset")
    assert (event.cognito_username, event.actor, event.source) == ("erin", helpdesk, "admin")
    assert event.detail == {"token_deleted": True}


@pytest.mark.django_db
def test_reset_totp_ends_every_pending_enrollment_of_that_user(
    helpdesk: Any, pool: Pool, signal_log: SignalLog, django_capture_on_commit_callbacks: Any
) -> None:
    """An enrollment an intruder started with the victim's token before the reset must not
    be verifiable after it."""
    from rest_framework.test import APIClient

    enrollment, token, _ = start_via_api(pool, "erin")
    other, _, _ = start_via_api(pool, "frank")
    _record_admin_delete_software_token([])
    signal_log.events.clear()
    context = flows.Context.build("admin", actor=helpdesk)

    with django_capture_on_commit_callbacks(execute=True):
        flows.reset_totp(context, "erin", enrollment.user)

    enrollment.refresh_from_db()
    assert enrollment.status == "cancelled"
    assert enrollment.encrypted_credential is None
    (cancelled,) = signal_log.named("enrollment_cancelled")
    assert (cancelled["enrollment"].pk, cancelled["source"]) == (enrollment.pk, "admin")
    event = AuditEvent.objects.get(kind="cancelled")
    assert (event.enrollment_id, event.actor, event.detail) == (
        enrollment.pk,
        helpdesk,
        {"reason": "mfa_reset"},
    )
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    late = api.post(
        f"/api/mfa/enrollments/{enrollment.pk}/verify/", {"user_code": fresh_code()}, format="json"
    )
    assert late.status_code == 409
    assert late.json()["code"] == "enrollment_not_pending"
    assert not pool.mfa_state("erin").get("UserMFASettingList")
    other.refresh_from_db()
    assert other.status == "pending"  # another user's enrollment is not touched


@pytest.mark.django_db
def test_reset_needs_the_verify_permission_and_skips_the_admin_themself(pool: Pool) -> None:
    enrollment, _, _ = start_via_api(pool, "frank")
    clerk = make_staff("clerk", ("view_enrollment", "change_enrollment"))
    client = Client()
    client.force_login(clerk)
    assert 'value="reset_totp"' not in client.get(changelist_url()).content.decode()
    confirm_action(client, "reset_totp", [enrollment.pk])
    assert not AuditEvent.objects.filter(kind="mfa_reset").exists()

    frank = make_staff("frank")
    client.force_login(frank)
    response = run_action(client, "reset_totp", [enrollment.pk])
    assert response.status_code == 302
    assert any("your own TOTP" in text for text in messages_of(response))
    assert not AuditEvent.objects.filter(kind="mfa_reset").exists()


# --- Refresh MFA state --------------------------------------------------------------------------


@pytest.mark.django_db
def test_refresh_shows_each_row_and_completes_owed_preferences(
    admin_client: Client, helpdesk: Any, pool: Pool
) -> None:
    verified, _, _ = start_via_api(pool, "gina")
    verify_with_code(admin_client, verified.pk, user_code=fresh_code())
    # Cognito could not be told at verify time: the preference is owed.
    pool.client.admin_set_user_mfa_preference(
        UserPoolId=pool.pool_id,
        Username="gina",
        SoftwareTokenMfaSettings={"Enabled": False, "PreferredMfa": False},
    )
    Enrollment.objects.filter(pk=verified.pk).update(preference_pending=True)
    pending, _, _ = start_via_api(pool, "hank")
    ghost = Enrollment.objects.create(
        cognito_username="ghost",
        flow="access_token",
        status="expired",
        expires_at=verified.expires_at,
    )

    page = run_action(admin_client, "refresh_mfa_state", [verified.pk, pending.pk, ghost.pk])
    assert page.status_code == 200
    results = {row["enrollment"].cognito_username: row for row in page.context["results"]}
    assert results["gina"]["state"] == MFAState(
        software_token_mfa_enabled=True,
        preferred_mfa="SOFTWARE_TOKEN_MFA",
        mfa_methods=("SOFTWARE_TOKEN_MFA",),
    )
    assert results["hank"]["state"].software_token_mfa_enabled is False
    assert results["ghost"]["state"] is None
    assert results["ghost"]["error"] == "The Cognito user does not exist."
    html = page.content.decode()
    assert "The Cognito user does not exist." in html
    assert "Read the MFA state of 2 users from Cognito." in messages_of(page)

    verified.refresh_from_db()
    assert verified.preference_pending is False
    assert pool.mfa_state("gina")["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA"]
    outcomes = dict(
        AuditEvent.objects.filter(kind="state_refreshed").values_list("cognito_username", "outcome")
    )
    assert outcomes == {"gina": "ok", "hank": "ok", "ghost": "not_found"}
    assert set(
        AuditEvent.objects.filter(kind="state_refreshed").values_list("actor", flat=True)
    ) == {helpdesk.pk}


@pytest.mark.django_db
def test_refresh_concurrency_is_bounded(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.COGNITO_MFA_ADMIN_REFRESH_CONCURRENCY = 3
    in_flight = peak = 0
    lock = threading.Lock()
    # Every call waits until three are in flight at once: one after the other, the first call
    # would break the barrier; more than three would show in the peak.
    three_at_once = threading.Barrier(3, timeout=10)

    class SlowCognito:
        def admin_get_user(self, *, username: str) -> MFAState:
            nonlocal in_flight, peak
            with lock:
                in_flight += 1
                peak = max(peak, in_flight)
            three_at_once.wait()
            with lock:
                in_flight -= 1
            return MFAState(False, None, ())

    monkeypatch.setattr(admin_flows, "get_client", SlowCognito)
    names = [f"user{index}" for index in range(30)]
    results = flows.refresh_mfa_states(flows.Context.build("admin"), names + names[:5])
    assert list(results) == names  # each user once, in the order given
    assert all(isinstance(state, MFAState) for state in results.values())
    assert peak == 3


# --- nothing secret on any admin page -----------------------------------------------------------


@pytest.mark.django_db
def test_no_admin_page_shows_secret_token_or_session(
    admin_client: Client, helpdesk: Any, pool: Pool
) -> None:
    helpdesk.is_superuser = True
    helpdesk.save()
    enrollment, token, secret = start_via_api(pool, "ivan")
    assert secret == MOTO_SECRET
    session = "SESSION-SENTINEL-" + "s" * 40
    challenge_token = "CHALLENGE-TOKEN-SENTINEL-" + "c" * 20
    challenge = Enrollment.objects.create(
        cognito_username="judy",
        flow="challenge",
        expires_at=enrollment.expires_at,
        credential_expires_at=enrollment.expires_at,
        encrypted_credential=crypto.encrypt(session),
        challenge_token_hash=flows.hash_challenge_token(challenge_token),
    )
    # Some history: a failed admin verify, so the audit pages and LogEntry have content.
    verify_with_code(admin_client, enrollment.pk, user_code=wrong_code())

    sentinels = {
        "secret": secret,
        "access token": token,
        "token signature": token.rsplit(".", 1)[1],
        "session": session,
        "challenge token": challenge_token,
        "challenge token hash": challenge.challenge_token_hash,
        "ciphertext": bytes(
            Enrollment.objects.get(pk=enrollment.pk).encrypted_credential or b""
        ).decode(),
        "challenge ciphertext": bytes(challenge.encrypted_credential or b"").decode(),
    }
    pages: dict[str, Any] = {
        "changelist": admin_client.get(changelist_url()),
        "search": admin_client.get(changelist_url(), {"q": "ivan"}),
        "app index": admin_client.get(reverse("admin:app_list", args=["cognito_mfa"])),
        "audit list": admin_client.get(reverse("admin:cognito_mfa_auditevent_changelist")),
        "verify page": admin_client.get(verify_url(enrollment.pk)),
        "verify page (challenge)": admin_client.get(verify_url(challenge.pk)),
        "verify retry": verify_with_code(admin_client, enrollment.pk, user_code=wrong_code()),
        "cancel page": run_action(
            admin_client, "cancel_enrollments", [enrollment.pk, challenge.pk]
        ),
        "reset page": run_action(admin_client, "reset_totp", [enrollment.pk, challenge.pk]),
        "refresh page": run_action(
            admin_client, "refresh_mfa_state", [enrollment.pk, challenge.pk]
        ),
    }
    for row in (enrollment, challenge):
        pk = row.pk
        pages[f"change form {pk}"] = admin_client.get(
            reverse("admin:cognito_mfa_enrollment_change", args=[pk])
        )
        pages[f"history {pk}"] = admin_client.get(
            reverse("admin:cognito_mfa_enrollment_history", args=[pk])
        )
    for event in AuditEvent.objects.all():
        pages[f"audit event {event.pk}"] = admin_client.get(
            reverse("admin:cognito_mfa_auditevent_change", args=[event.pk])
        )
    assert any(name.startswith("audit event") for name in pages)
    for name, response in pages.items():
        assert response.status_code == 200, name
        html = response.content.decode()
        for what, sentinel in sentinels.items():
            assert sentinel not in html, f"{what} on the {name}"
        assert not re.search(r"eyJ[A-Za-z0-9_-]{10,}\.", html), f"a JWT on the {name}"
        for field in ("encrypted_credential", "challenge_token_hash", "verify_lease_until"):
            assert field not in html, f"{field} on the {name}"
    for entry in LogEntry.objects.all():
        for sentinel in sentinels.values():
            assert sentinel not in entry.change_message


@pytest.mark.django_db(transaction=True)
def test_reset_from_a_sign_in_challenge_row_names_the_site_user(
    mfa_pool: Pool, signal_log: SignalLog
) -> None:
    """A help-desk case of a pool that requires MFA. gina's locked sign-in enrollment is an
    unproven claim and names nobody: there is no one to reset from it. Her verified one, which
    the tokens proved, names her Cognito user but (no site account at the time) no site user:
    the admin chose gina, so the reset's audit row and signal name her site account."""
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    from tests.support.challenge import mfa_setup_session

    api = APIClient()
    session = mfa_setup_session(mfa_pool, "gina")
    claims = [
        api.post(
            "/api/mfa/challenge/enrollments/",
            {"username": "gina", "session": session},
            format="json",
        ).json()
        for _ in range(2)
    ]
    body = {"challenge_token": claims[0]["challenge_token"], "user_code": wrong_code()}
    for _ in range(5):
        api.post(f"/api/mfa/challenge/enrollments/{claims[0]['id']}/verify/", body, format="json")
    body = {"challenge_token": claims[1]["challenge_token"], "user_code": fresh_code()}
    verified = api.post(
        f"/api/mfa/challenge/enrollments/{claims[1]['id']}/verify/", body, format="json"
    )
    assert verified.status_code == 200, verified.content
    locked, proven = (Enrollment.objects.get(pk=claim["id"]) for claim in claims)
    assert (locked.status, locked.cognito_username, locked.user) == ("locked", "", None)
    assert (proven.status, proven.cognito_username, proven.user) == ("verified", "gina", None)
    gina = get_user_model()._default_manager.create(username="gina")

    client = Client()
    client.force_login(make_staff("helpdesk"))
    signal_log.events.clear()
    response = confirm_action(client, "reset_totp", [locked.pk])
    assert response.status_code == 302
    assert any("unproven sign-in claim" in text for text in messages_of(response))
    assert not AuditEvent.objects.filter(kind="mfa_reset").exists()
    assert signal_log.named("mfa_preference_changed") == []
    assert mfa_pool.mfa_state("gina")["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA"]

    assert confirm_action(client, "reset_totp", [proven.pk]).status_code == 302
    reset = AuditEvent.objects.get(kind="mfa_reset")
    assert (reset.cognito_username, reset.user_id) == ("gina", gina.pk)
    (changed,) = signal_log.named("mfa_preference_changed")
    assert (changed["user"], changed["enabled"], changed["source"]) == (gina, False, "admin")
    assert not mfa_pool.mfa_state("gina").get("UserMFASettingList")


@pytest.mark.django_db
def test_admin_verify_of_an_unproven_sign_in_claim_says_only_what_is_known(
    mfa_pool: Pool,
    settings: Any,
    signal_log: SignalLog,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """Server-side completion off: the device verified is the Session's user's, and the
    username is a claim; the help desk must not read "TOTP MFA is on for <name>"."""
    from rest_framework.test import APIClient

    from tests.support.challenge import mfa_setup_session

    settings.COGNITO_MFA_CHALLENGE_COMPLETE_AUTH = False
    session = mfa_setup_session(mfa_pool, "gina")
    started = (
        APIClient()
        .post(
            "/api/mfa/challenge/enrollments/",
            {"username": "gina", "session": session},
            format="json",
        )
        .json()
    )
    client = Client()
    client.force_login(make_staff("helpdesk"))
    form_page = client.get(verify_url(started["id"]))
    assert form_page.status_code == 200
    assert "unproven claim" in form_page.content.decode()
    assert "gina" not in form_page.content.decode()
    signal_log.events.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = verify_with_code(client, started["id"], user_code=fresh_code())

    shown = messages_of(response)
    assert not any("TOTP MFA is on" in text for text in shown), shown
    assert any("No tokens proved" in text for text in shown), shown
    # The claim is unproven: neither the messages nor the verify page name gina.
    assert not any("gina" in text for text in shown), shown
    assert Enrollment.objects.get(pk=started["id"]).cognito_username == ""
    event = AuditEvent.objects.get(kind="verified")
    assert event.detail == {"claim": "unproven"}
    assert event.user is None
    (sent,) = signal_log.named("software_token_verified")
    assert sent["user"] is None
    assert sent["enrollment"].user is None


@pytest.mark.django_db
def test_an_unproven_sign_in_claim_is_listed_and_shown_without_a_name(
    admin_client: Client, mfa_pool: Pool
) -> None:
    from rest_framework.test import APIClient

    from tests.support.challenge import mfa_setup_session

    started = (
        APIClient()
        .post(
            "/api/mfa/challenge/enrollments/",
            {"username": "wanda-claimed", "session": mfa_setup_session(mfa_pool, "pete")},
            format="json",
        )
        .json()
    )
    listing = admin_client.get(changelist_url())
    change = admin_client.get(f"{changelist_url()}{started['id']}/change/")
    for page in (listing, change):
        assert page.status_code == 200
        html = page.content.decode()
        assert "(unproven sign-in claim)" in html
        assert "wanda-claimed" not in html
    assert admin_client.get(changelist_url(), {"q": "wanda"}).context["cl"].result_count == 0
