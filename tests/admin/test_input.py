"""The admin's changelists and actions with odd input: a message and the changelist again,
nothing changed, never a 500 (on SQLite and on PostgreSQL)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from cognito_mfa.admin import EnrollmentAdmin
from cognito_mfa.admin.changelists import SEARCH_TERM_MAX_LENGTH
from cognito_mfa.models import AuditEvent, Enrollment
from tests.support.admin import (
    changelist_url,
    confirm_action,
    messages_of,
    run_action,
    verify_url,
    verify_with_code,
)
from tests.support.cognito import Pool, count_cognito_calls
from tests.support.enrollments import start_via_api

AUDIT_CHANGELIST = "/admin/cognito_mfa/auditevent/"


@pytest.fixture
def superuser_client(db: Any) -> Client:
    user = get_user_model().objects.create_superuser("root", "root@example.com", "root-pw-1")
    client = Client(raise_request_exception=False)  # a crash is then a 500, as in production
    client.force_login(user)
    return client


@pytest.fixture
def started(alice_api: APIClient) -> str:
    response = alice_api.post("/api/mfa/enrollments/", {}, format="json")
    assert response.status_code == 201, response.content
    return str(response.json()["id"])


def _snapshot() -> tuple[Any, ...]:
    rows = Enrollment.objects.values_list("id", "status", "attempts", "verify_lease_until")
    return sorted(rows), AuditEvent.objects.count()


# --- actions with selected ids that are not primary keys ----------------------------------------

MALFORMED_IDS = ["not-a-uuid", "", "' OR 1=1 --", "x" * 5000]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "action", ["verify_device", "cancel_enrollments", "reset_totp", "refresh_mfa_state"]
)
def test_actions_with_malformed_selected_ids_change_nothing(
    superuser_client: Client, started: str, action: str
) -> None:
    before = _snapshot()
    with count_cognito_calls() as counter:
        for bad in MALFORMED_IDS:
            for selected in ([bad], [started, bad]):  # one bad id spoils the whole selection
                for submit in (run_action, confirm_action):
                    response = submit(superuser_client, action, selected, user_code="123456")
                    assert response.status_code == 302, (submit.__name__, response.status_code)
                    assert response["Location"] == changelist_url()
                    assert messages_of(response)[-1] == (
                        "The selection was not valid. No items have been changed."
                    )
    assert counter.calls == []
    assert _snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    "bad", ["not-a-uuid", "' OR 1=1 --", "x" * 5000, str(uuid.uuid4())], ids=repr
)
def test_the_verify_page_of_a_malformed_or_missing_id_says_so(
    superuser_client: Client, started: str, bad: str
) -> None:
    before = _snapshot()
    with count_cognito_calls() as counter:
        shown = superuser_client.get(verify_url(bad))
        posted = verify_with_code(superuser_client, bad, user_code="123456")
    for response in (shown, posted):
        assert response.status_code == 302
        assert response["Location"] == changelist_url()
        assert messages_of(response)[-1] == (
            f"No enrollment has the ID “{bad}”. Perhaps it was deleted?"
        )
    assert counter.calls == []
    assert _snapshot() == before


@pytest.mark.django_db
def test_an_action_on_a_well_formed_selection_still_runs(
    superuser_client: Client, started: str
) -> None:
    response = run_action(superuser_client, "cancel_enrollments", [started])
    assert response.status_code == 200  # the confirmation page
    assert b"alice" in response.content


TOO_MANY = (
    "An action takes at most 2 enrollments at a time and more are selected; nothing was "
    "changed. Filter the list to narrow the selection."
)


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["cancel_enrollments", "reset_totp", "refresh_mfa_state"])
def test_select_all_beyond_the_show_all_page_is_refused_and_changes_nothing(
    superuser_client: Client, pool: Pool, monkeypatch: pytest.MonkeyPatch, action: str
) -> None:
    # "Select all" posts one row's id and select_across: the action gets the whole list.
    monkeypatch.setattr(EnrollmentAdmin, "list_max_show_all", 2)
    first, _, _ = start_via_api(pool, "ann")
    second, _, _ = start_via_api(pool, "ben")
    start_via_api(pool, "cat")
    before = _snapshot()
    with count_cognito_calls() as counter:
        for submit in (run_action, confirm_action):
            response = submit(superuser_client, action, [first.pk], select_across="1")
            assert response.status_code == 302, submit.__name__
            assert set(messages_of(response)) == {TOO_MANY}
    assert counter.calls == []
    assert _snapshot() == before

    # Up to the limit the same "Select all" runs: two rows once one is no longer listed.
    Enrollment.objects.filter(pk=first.pk).delete()
    response = run_action(superuser_client, action, [second.pk], select_across="1")
    assert response.status_code == 200, messages_of(response)  # confirmation or results
    assert b"ben" in response.content
    assert b"cat" in response.content


# --- changelist query strings -------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url", [changelist_url, lambda: AUDIT_CHANGELIST], ids=["enrollments", "audit events"]
)
def test_a_search_term_over_the_limit_finds_nothing_with_a_message(
    superuser_client: Client, started: str, url: Any
) -> None:
    response = superuser_client.get(url(), {"q": "x" * 100_000})
    assert response.status_code == 200
    assert response.context["cl"].result_count == 0
    assert f"Search terms are limited to {SEARCH_TERM_MAX_LENGTH} characters." in messages_of(
        response
    )
    at_limit = superuser_client.get(url(), {"q": "alice".ljust(SEARCH_TERM_MAX_LENGTH)})
    assert at_limit.status_code == 200
    assert messages_of(at_limit) == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "query"),
    [
        (changelist_url, {"flow__exact": "\x00", "status__exact": "pending"}),
        (changelist_url, {"q": "al\x00ice"}),
        (lambda: AUDIT_CHANGELIST, {"kind__exact": "st\x00arted"}),
        (lambda: AUDIT_CHANGELIST, {"q\x00": "alice"}),
    ],
    ids=["enrollment filter", "enrollment search", "audit filter", "audit key"],
)
def test_a_nul_in_a_query_value_is_dropped_with_a_message(
    superuser_client: Client, started: str, url: Any, query: dict[str, str]
) -> None:
    response = superuser_client.get(url(), query)
    assert response.status_code == 302
    kept = {key: value for key, value in query.items() if "\x00" not in key + value}
    expected = url() + ("?" + "&".join(f"{k}={v}" for k, v in kept.items()) if kept else "")
    assert response["Location"] == expected
    assert messages_of(response) == [
        "A search or filter value held a NUL character and was ignored."
    ]
    assert superuser_client.get(response["Location"]).status_code == 200


@pytest.mark.django_db
def test_a_nul_in_a_query_is_not_answered_to_staff_without_the_view_permission(
    started: str,
) -> None:
    user = get_user_model().objects.create_user("nobody", password="pw-123456789", is_staff=True)
    client = Client(raise_request_exception=False)
    client.force_login(user)
    assert client.get(changelist_url(), {"q": "\x00"}).status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [{"status__exact": "bogus"}, {"o": "99"}, {"p": "abc"}, {"id__exact": "not-a-uuid"}],
    ids=lambda query: next(iter(query)),
)
def test_odd_but_harmless_queries_are_no_500(
    superuser_client: Client, started: str, query: dict[str, str]
) -> None:
    for url in (changelist_url(), AUDIT_CHANGELIST):
        response = superuser_client.get(url, query)
        assert response.status_code in (200, 302), (url, response.status_code)


@pytest.mark.django_db
@pytest.mark.parametrize("object_id", ["not-a-uuid", "%00", "x" * 3000])
def test_change_history_and_delete_views_with_bad_ids_are_no_500(
    superuser_client: Client, object_id: str
) -> None:
    for suffix in ("change/", "history/", "delete/"):
        response = superuser_client.get(f"/admin/cognito_mfa/enrollment/{object_id}/{suffix}")
        assert response.status_code in (302, 404), (suffix, response.status_code)
