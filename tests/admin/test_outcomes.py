"""What the help desk is told after an action, and who may reach which action (crafted POSTs
included): the admin's answer must match what changed in Cognito and in the audit trail."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from cognito_mfa.cognito import get_client
from cognito_mfa.models import AuditEvent, Enrollment
from tests.support.admin import (
    changelist_url,
    confirm_action,
    make_staff,
    run_action,
    verify_url,
    verify_with_code,
)
from tests.support.cognito import Pool, fresh_code
from tests.support.enrollments import start_via_api
from tests.support.signals import SignalLog

ACTIONS = ("verify_device", "cancel_enrollments", "reset_totp", "refresh_mfa_state")


def levelled_messages(response: Any) -> list[tuple[str, str]]:
    return [(message.level_tag, str(message)) for message in get_messages(response.wsgi_request)]


def _answer_admin_delete_software_token_with(code: str) -> None:
    """Make AdminDeleteSoftwareToken fail with ``code`` (moto does not implement the call)."""

    class _Http:
        status_code = 400
        headers: dict[str, str] = {}

    def answer(params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        return _Http(), {
            "Error": {"Code": code, "Message": "Rate exceeded"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }

    get_client().client.meta.events.register(
        "before-call.cognito-identity-provider.AdminDeleteSoftwareToken", answer
    )


def _database_state() -> Any:
    return (
        sorted(Enrollment.objects.values_list("cognito_username", "status", "attempts")),
        AuditEvent.objects.count(),
        LogEntry.objects.count(),
    )


# --- Reset TOTP: Cognito turned TOTP off, then failed to remove the token -----------------------


@pytest.mark.django_db(transaction=True)
def test_a_reset_whose_token_removal_fails_is_audited_and_not_called_a_no_op(
    pool: Pool, signal_log: SignalLog
) -> None:
    enrollment, _, _ = start_via_api(pool, "erin")
    client = Client()
    client.force_login(make_staff("helpdesk"))
    verify_with_code(client, enrollment.pk, user_code=fresh_code())
    client.get(changelist_url())  # shows (and so clears) the verify's message
    assert pool.mfa_state("erin")["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA"]
    _answer_admin_delete_software_token_with("TooManyRequestsException")
    signal_log.events.clear()

    done = confirm_action(client, "reset_totp", [enrollment.pk])

    assert done.status_code == 302
    # Cognito did turn TOTP off: the admin, the audit trail and the signal all say so.
    assert not pool.mfa_state("erin").get("UserMFASettingList")
    told = levelled_messages(done)
    assert not any("Nothing was changed" in text for _, text in told), told
    assert ("success", "TOTP MFA was turned off for 1 user.") in told
    assert any(
        level == "warning" and "erin" in text and "reset again" in text for level, text in told
    ), told
    event = AuditEvent.objects.get(kind="mfa_reset")
    assert (event.cognito_username, event.source, event.outcome) == (
        "erin",
        "admin",
        "cognito_unavailable",
    )
    assert event.detail == {"token_deleted": False}
    (changed,) = signal_log.named("mfa_preference_changed")
    assert (changed["enabled"], changed["source"]) == (False, "admin")


# --- Refresh: nothing read is not a success -----------------------------------------------------


@pytest.mark.django_db
def test_a_refresh_that_reads_nobody_shows_no_success_message(pool: Pool) -> None:
    ghost = Enrollment.objects.create(
        cognito_username="ghost",
        flow="access_token",
        status="expired",
        expires_at="2030-01-01T00:00:00Z",
    )
    client = Client()
    client.force_login(make_staff("helpdesk"))

    page = run_action(client, "refresh_mfa_state", [ghost.pk])

    assert page.status_code == 200
    assert levelled_messages(page) == [("warning", "The MFA state of 1 user could not be read.")]


# --- who may run what, by the action bar and by crafted POSTs -----------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("permissions", "offered"),
    [
        (("view_enrollment",), set()),
        (("change_enrollment",), {"cancel_enrollments", "refresh_mfa_state"}),
        (("view_enrollment", "verify_enrollment"), {"verify_device"}),
        (("view_enrollment", "change_enrollment", "verify_enrollment"), set(ACTIONS)),
    ],
)
def test_actions_offered_are_exactly_those_a_crafted_post_can_run(
    pool: Pool, permissions: tuple[str, ...], offered: set[str]
) -> None:
    enrollment, _, _ = start_via_api(pool, "alice")
    client = Client()
    client.force_login(make_staff("clerk", permissions))
    page = client.get(changelist_url()).content.decode()
    assert {action for action in ACTIONS if f'value="{action}"' in page} == offered

    for action in set(ACTIONS) - offered:
        before = _database_state()
        first_step = {"index": 0}
        crafted = {"index": 0, "post": "yes", "user_code": fresh_code()}
        responses = [
            run_action(client, action, [enrollment.pk], **form) for form in (first_step, crafted)
        ]
        responses.append(confirm_action(client, action, [enrollment.pk], user_code=fresh_code()))
        for response in responses:
            # The changelist again (or a redirect to it), never an action's page.
            assert response.status_code in (200, 302), action
            assert "cognito-mfa-action" not in response.content.decode(), action
        assert _database_state() == before, action


@pytest.mark.django_db
def test_staff_without_enrollment_permissions_reach_no_action(pool: Pool) -> None:
    enrollment, _, _ = start_via_api(pool, "alice")
    client = Client()
    client.force_login(make_staff("clerk", ("verify_enrollment", "view_auditevent")))
    before = _database_state()
    assert client.get(changelist_url()).status_code == 403
    for action in ACTIONS:
        assert run_action(client, action, [enrollment.pk]).status_code == 403
        confirmed = confirm_action(client, action, [enrollment.pk], user_code=fresh_code())
        assert confirmed.status_code == 403
    # verify_enrollment alone, without seeing enrollments, does not open the verify page.
    assert client.get(verify_url(enrollment.pk)).status_code == 403
    assert verify_with_code(client, enrollment.pk, user_code=fresh_code()).status_code == 403
    assert _database_state() == before


@pytest.mark.django_db
def test_actions_need_the_csrf_token_and_a_get_runs_none(pool: Pool) -> None:
    enrollment, _, _ = start_via_api(pool, "alice")
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_staff("helpdesk"))
    before = _database_state()
    for action in ACTIONS:
        assert run_action(client, action, [enrollment.pk]).status_code == 403
        confirmed = confirm_action(client, action, [enrollment.pk], user_code=fresh_code())
        assert confirmed.status_code == 403
        client.get(
            changelist_url(),
            {"action": action, "post": "yes", "_selected_action": str(enrollment.pk)},
        )
    assert verify_with_code(client, enrollment.pk, user_code=fresh_code()).status_code == 403
    # A GET only shows the page: a code in its query string is not tried.
    assert client.get(verify_url(enrollment.pk), {"user_code": fresh_code()}).status_code == 200
    assert _database_state() == before


@pytest.mark.django_db
def test_audit_rows_stay_read_only_for_a_superuser_posting_by_hand(pool: Pool) -> None:
    start_via_api(pool, "alice")
    root = make_staff("root")
    root.is_superuser = True
    root.save()
    client = Client()
    client.force_login(root)
    event = AuditEvent.objects.get()
    changelist = reverse("admin:cognito_mfa_auditevent_changelist")
    assert 'value="delete_selected"' not in client.get(changelist).content.decode()

    selected = {"action": "delete_selected", "_selected_action": [str(event.pk)]}
    client.post(changelist, {**selected, "index": 0})
    client.post(changelist, {**selected, "post": "yes"})
    change = reverse("admin:cognito_mfa_auditevent_change", args=[event.pk])
    assert client.post(change, {"kind": "verified", "outcome": "ok"}).status_code == 403
    delete = reverse("admin:cognito_mfa_auditevent_delete", args=[event.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    add = reverse("admin:cognito_mfa_auditevent_add")
    assert client.post(add, {"kind": "verified", "source": "admin"}).status_code == 403

    assert list(AuditEvent.objects.values_list("pk", "kind", "outcome")) == [
        (event.pk, event.kind, event.outcome)
    ]


# --- Deleting a user whose enrollment is pending ----------------------------------------------


@pytest.mark.django_db
def test_a_user_can_be_deleted_once_the_pending_enrollment_has_expired(pool: Pool) -> None:
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.utils import timezone

    enrollment, _, _ = start_via_api(pool, "frank")
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "x"))
    user_delete_url = reverse("admin:auth_user_delete", args=[enrollment.user_id])

    # Live: the row must be cancelled first (a verify may be on its way).
    refused = client.post(user_delete_url, {"post": "yes"})
    assert refused.status_code == 403
    assert Enrollment.objects.filter(pk=enrollment.pk, status="pending").exists()
    assert (
        client.post(
            reverse("admin:cognito_mfa_enrollment_delete", args=[enrollment.pk]), {"post": "yes"}
        ).status_code
        == 403
    )

    # Past its expiry nothing can verify it: the user goes, and the row with them.
    Enrollment.objects.filter(pk=enrollment.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    deleted = client.post(user_delete_url, {"post": "yes"})
    assert deleted.status_code == 302
    assert not get_user_model().objects.filter(pk=enrollment.user_id).exists()
    assert not Enrollment.objects.filter(pk=enrollment.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_an_expired_pending_enrollment_is_not_deleted_while_its_verify_is_in_flight(
    pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.utils import timezone
    from rest_framework.test import APIClient

    enrollment, token, _ = start_via_api(pool, "grace")
    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "x"))
    client = get_client()
    answer = client.verify_software_token
    deletes: list[int] = []

    def verify_while_the_clock_passes_expiry(**params: Any) -> Any:
        # The lease was claimed before expires_at; while Cognito answers, the row expires and
        # the help desk deletes the user. The verify must still end as a verify.
        Enrollment.objects.filter(pk=enrollment.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
        url = reverse("admin:auth_user_delete", args=[enrollment.user_id])
        deletes.append(admin.post(url, {"post": "yes"}).status_code)
        return answer(**params)

    monkeypatch.setattr(client, "verify_software_token", verify_while_the_clock_passes_expiry)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    response = api.post(
        f"/api/mfa/enrollments/{enrollment.pk}/verify/", {"user_code": fresh_code()}, format="json"
    )

    assert deletes == [403]  # a verify holding the lease finishes first, as for the cleanup
    assert response.status_code == 200, response.content
    assert Enrollment.objects.get(pk=enrollment.pk).status == "verified"
