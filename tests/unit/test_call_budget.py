"""The site's budget of Cognito calls: the bucket, the finishing reserve, the back-off, the
boundary that charges every call, the refusals the API answers, and Redis across processes."""

from __future__ import annotations

import contextvars
import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from botocore import xform_name
from botocore.stub import Stubber
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from cognito_mfa import budget, cognito
from cognito_mfa import exceptions as exc
from cognito_mfa.budget import CallBudget, LocalState, get_budget
from cognito_mfa.checks import check_call_budget, check_call_budget_shared
from cognito_mfa.models import AuditEvent, Enrollment
from tests.support.cognito import Pool, fresh_code
from tests.support.services import require_service

BASE = "/api/mfa/"
ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(settings: Any) -> FakeClock:
    settings.COGNITO_MFA_CALL_BUDGET_RATES = {"UserResourceUpdate": 10}
    settings.COGNITO_MFA_CALL_BUDGET_RESERVE = 0.5
    return FakeClock()


def _budget(clock: FakeClock) -> CallBudget:
    return CallBudget(LocalState(clock), sleep=clock.sleep, clock=clock)


def _admitted(budget_: CallBudget, operation: str, count: int, **options: Any) -> int:
    """How many of ``count`` calls are admitted, each charged as by a request of its own."""
    admitted = 0
    for _ in range(count):
        try:
            # A context of its own: not the slot a request under way here was admitted for.
            contextvars.Context().run(budget_.charge, operation, **options)
        except exc.CallBudgetExhausted:
            continue
        admitted += 1
    return admitted


# --- the bucket and the reserve -------------------------------------------------------------


def test_starts_get_the_unreserved_share_and_are_refused_with_the_wait(clock: FakeClock) -> None:
    calls = _budget(clock)
    # 10/s, half held back: five starts at once, the sixth waits for the next tenth of a second.
    assert _admitted(calls, "AssociateSoftwareToken", 5) == 5
    with pytest.raises(exc.CallBudgetExhausted) as refused:
        calls.charge("AssociateSoftwareToken")
    assert refused.value.retry_after == 1  # 0.1 s, rounded up to Retry-After's whole seconds
    clock.now += 0.1
    assert _admitted(calls, "AssociateSoftwareToken", 2) == 1


def test_refused_starts_are_told_to_come_back_one_after_the_other(clock: FakeClock) -> None:
    calls = _budget(clock)
    _admitted(calls, "AssociateSoftwareToken", 5)
    waits = []
    for _ in range(20):
        with pytest.raises(exc.CallBudgetExhausted) as refused:
            calls.charge("AssociateSoftwareToken")
        waits.append(refused.value.retry_after)
    # Starts get 5 a second here: the 20 refused are spread over 4 s, not all sent back at 1 s.
    assert waits[:4] == [1] * 4
    assert waits[-1] == 5
    assert waits == sorted(waits)
    # A finishing call is not queued behind them: it waits only for its own slot.
    _admitted(calls, "VerifySoftwareToken", 5, finishing=True)
    with pytest.raises(exc.CallBudgetExhausted) as refused:
        calls.charge("VerifySoftwareToken", finishing=True)
    assert refused.value.retry_after == 1


def test_a_start_never_takes_the_last_finishing_slot(clock: FakeClock) -> None:
    calls = _budget(clock)
    assert _admitted(calls, "VerifySoftwareToken", 9, finishing=True) == 9
    # One slot of the second is left: it is a finishing slot, so no start may have it.
    assert _admitted(calls, "AssociateSoftwareToken", 3) == 0
    assert _admitted(calls, "SetUserMFAPreference", 1, finishing=True) == 1
    assert _admitted(calls, "VerifySoftwareToken", 1, finishing=True) == 0


def test_finishing_calls_keep_starts_out_while_the_reserve_is_in_use(clock: FakeClock) -> None:
    calls = _budget(clock)
    assert _admitted(calls, "AssociateSoftwareToken", 20) == 5
    assert _admitted(calls, "VerifySoftwareToken", 20, finishing=True) == 5
    for _ in range(10):  # a tenth of a second each: one slot frees, a verify takes it
        clock.now += 0.1
        assert _admitted(calls, "VerifySoftwareToken", 1, finishing=True) == 1
        assert _admitted(calls, "AssociateSoftwareToken", 5) == 0


def test_a_patient_call_waits_for_its_slot(clock: FakeClock) -> None:
    calls = _budget(clock)
    _admitted(calls, "VerifySoftwareToken", 10, finishing=True)
    started = clock.now
    calls.charge("SetUserMFAPreference", finishing=True, patience=2)
    assert clock.now - started == pytest.approx(0.1)
    with budget.waiting(0.05), pytest.raises(exc.CallBudgetExhausted):
        calls.charge("SetUserMFAPreference", finishing=True)


def test_categories_are_budgeted_apart(clock: FakeClock, settings: Any) -> None:
    settings.COGNITO_MFA_CALL_BUDGET_RATES = {
        "UserResourceUpdate": 10,
        "UserRead": 4,
        "UserAuthentication": None,
    }
    calls = _budget(clock)
    _admitted(calls, "VerifySoftwareToken", 10, finishing=True)
    assert _admitted(calls, "GetUser", 10) == 2
    assert _admitted(calls, "AdminGetUser", 10) == 0
    assert _admitted(calls, "InitiateAuth", 500) == 500  # None: not budgeted


# --- the back-off after Cognito throttled ---------------------------------------------------


def _per_second(calls: CallBudget, clock: FakeClock) -> int:
    """Finishing calls admitted over one second, asking every millisecond."""
    admitted = 0
    for _ in range(1000):
        clock.now += 0.001
        admitted += _admitted(calls, "VerifySoftwareToken", 1, finishing=True)
    return admitted


def test_throttling_halves_the_rate_once_a_second_and_it_recovers(clock: FakeClock) -> None:
    state = LocalState(clock)
    calls = CallBudget(state, sleep=clock.sleep, clock=clock)
    calls.throttled("VerifySoftwareToken")
    calls.throttled("AssociateSoftwareToken")  # the same burst: counted once
    assert state.decide("UserResourceUpdate", "acquire", 10, 1.0).factor == 0.5
    clock.now += 10  # empty bucket, half recovered
    calls.throttled("SetUserMFAPreference")
    assert state.decide("UserResourceUpdate", "acquire", 10, 1.0).factor == pytest.approx(0.5)
    _per_second(calls, clock)  # the bucket's burst
    assert _per_second(calls, clock) in (5, 6)  # 10/s halved (the first second of recovery)
    clock.now += 10
    _per_second(calls, clock)  # the full bucket's burst again
    assert _per_second(calls, clock) in (10, 11)  # back to the configured rate
    for _ in range(10):  # never below a tenth
        clock.now += 1.0
        calls.throttled("VerifySoftwareToken")
    assert state.decide("UserResourceUpdate", "acquire", 10, 1.0).factor == pytest.approx(0.1)


# --- the boundary charges every call ---------------------------------------------------------

CALLS: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    ("associate_software_token", "AssociateSoftwareToken", {"access_token": "t"}, {}),
    ("verify_software_token", "VerifySoftwareToken", {"access_token": "t", "user_code": "1"}, {}),
    ("verify_software_token_raw", "VerifySoftwareToken", {"session": "s", "user_code": "1"}, {}),
    (
        "set_user_mfa_preference",
        "SetUserMFAPreference",
        {"access_token": "t", "enabled": False, "preferred": False},
        {},
    ),
    ("get_user", "GetUser", {"access_token": "t"}, {}),
    ("respond_to_mfa_setup", "RespondToAuthChallenge", {"username": "u", "session": "s"}, {}),
    (
        "call",  # a site's own call (the example project's sign-in)
        "InitiateAuth",
        {
            "operation": "InitiateAuth",
            "ClientId": "c",
            "AuthFlow": "USER_PASSWORD_AUTH",
            "AuthParameters": {},
        },
        {},
    ),
    ("admin_get_user", "AdminGetUser", {"username": "u"}, {}),
    (
        "admin_set_user_mfa_preference",
        "AdminSetUserMFAPreference",
        {"username": "u", "enabled": False, "preferred": False},
        {},
    ),
    ("admin_delete_software_token", "AdminDeleteSoftwareToken", {"username": "u"}, {}),
]


class RefusingBudget:
    def __init__(self) -> None:
        self.charged: list[tuple[str, bool]] = []

    def charge(self, operation: str, *, finishing: bool = False, patience: float = 0) -> None:
        self.charged.append((operation, finishing))
        raise exc.CallBudgetExhausted(retry_after=3)

    def throttled(self, operation: str) -> None:
        raise AssertionError("nothing was sent")


@pytest.fixture
def refusing(monkeypatch: pytest.MonkeyPatch) -> RefusingBudget:
    refusing = RefusingBudget()
    monkeypatch.setattr(cognito.client, "get_budget", lambda: refusing)
    return refusing


@pytest.mark.parametrize(("method", "operation", "kwargs", "_"), CALLS)
def test_every_boundary_call_is_charged_before_anything_is_sent(
    refusing: RefusingBudget, method: str, operation: str, kwargs: dict[str, Any], _: Any
) -> None:
    boto = cognito.build_boto3_client()
    if method == "respond_to_mfa_setup":
        kwargs = {**kwargs, "client_id": "c"}
    # No response queued: a call that reached botocore would fail differently.
    with Stubber(boto), pytest.raises(exc.CallBudgetExhausted):
        getattr(cognito.CognitoClient(boto), method)(**kwargs)
    assert [charged for charged, _ in refusing.charged] == [operation]
    assert budget.CATEGORY_OF[operation]


def test_the_boundary_calls_only_operations_with_a_category() -> None:
    source = Path(cognito.client.__file__).read_text()
    called = set(re.findall(r"self\.client\.(\w+)\(", source)) | {"admin_delete_software_token"}
    names = {xform_name(name) for name in budget.CATEGORY_OF}
    assert called <= names, called - names
    assert {method for method, *_ in CALLS} >= {
        name for name in dir(cognito.CognitoClient) if not name.startswith("_")
    } - {"user_pool_id"}


def test_verify_and_the_preference_that_completes_it_are_finishing_calls(
    refusing: RefusingBudget,
) -> None:
    client = cognito.CognitoClient(cognito.build_boto3_client())
    for call in (
        lambda: client.verify_software_token(access_token="t", user_code="1"),
        lambda: client.set_user_mfa_preference(access_token="t", enabled=True, preferred=True),
        lambda: client.admin_set_user_mfa_preference(username="u", enabled=True, preferred=True),
        lambda: client.respond_to_mfa_setup(username="u", session="s", client_id="c"),
        lambda: client.associate_software_token(access_token="t"),
        lambda: client.set_user_mfa_preference(access_token="t", enabled=False, preferred=False),
    ):
        with pytest.raises(exc.CallBudgetExhausted):
            call()
    assert [finishing for _, finishing in refusing.charged] == [True] * 4 + [False] * 2


# --- refusals as the API answers them -------------------------------------------------------


@pytest.fixture
def tight(settings: Any, monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """2 UserResourceUpdate calls a second (one start, then only finishing calls), on a clock
    that stands still unless the test (or a call waiting for its slot) moves it."""
    settings.COGNITO_MFA_CALL_BUDGET_RATES = {"UserResourceUpdate": 2}
    settings.COGNITO_MFA_CALL_BUDGET_RESERVE = 0.5
    clock = FakeClock()
    monkeypatch.setattr(budget, "_budget", _budget(clock))
    return clock


def _assert_refused(response: Any, retry_after: str) -> None:
    assert response.status_code == 429, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "code": "throttled",
        "detail": exc.CallBudgetExhausted.default_detail,
    }
    assert response["Retry-After"] == retry_after


@pytest.mark.django_db
def test_a_start_refused_for_the_budget_is_a_429_and_changes_nothing(
    tight: FakeClock, alice_api: APIClient
) -> None:
    get_budget().charge("AssociateSoftwareToken")
    events = AuditEvent.objects.count()

    response = alice_api.post(BASE + "enrollments/", {}, format="json")

    _assert_refused(response, "2")  # 0.5 s to a slot + 1 s behind the queue
    assert not Enrollment.objects.exists()
    assert AuditEvent.objects.count() == events


@pytest.mark.django_db
def test_a_verify_refused_for_the_budget_is_a_429_and_the_enrollment_waits(
    tight: FakeClock, alice_api: APIClient
) -> None:
    started = alice_api.post(BASE + "enrollments/", {}, format="json").json()
    get_budget().charge("VerifySoftwareToken", finishing=True)
    events = AuditEvent.objects.count()

    response = alice_api.post(
        f"{BASE}enrollments/{started['id']}/verify/", {"user_code": fresh_code()}, format="json"
    )

    _assert_refused(response, "1")
    enrollment = Enrollment.objects.get()
    assert enrollment.status == "pending"
    assert enrollment.attempts == 0
    assert enrollment.verify_lease_until is None
    assert AuditEvent.objects.count() == events
    # A second later the same code finishes, preference included (it waited for its slot).
    tight.now += 1.0
    response = alice_api.post(
        f"{BASE}enrollments/{started['id']}/verify/", {"user_code": fresh_code()}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["mfa_enabled"] is True


@pytest.mark.django_db
def test_a_challenge_start_refused_for_the_budget_is_a_429(
    tight: FakeClock, mfa_pool: Pool
) -> None:
    get_budget().charge("AssociateSoftwareToken")
    response = APIClient().post(
        BASE + "challenge/enrollments/",
        {"username": "carol", "session": "x" * 40},
        format="json",
    )
    _assert_refused(response, "2")
    assert not Enrollment.objects.exists()


# --- the early check: refused before any of the request's work ----------------------------


@pytest.fixture
def sent(tight: FakeClock, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """What reaches Cognito (botocore's ``before-call`` event) and what the budget charged."""
    record: dict[str, list[str]] = {"cognito": [], "charged": []}
    init = cognito.CognitoClient.__init__

    def watched(self: cognito.CognitoClient, client: Any) -> None:
        init(self, client)
        client.meta.events.register(
            "before-call.cognito-idp", lambda model, **_: record["cognito"].append(model.name)
        )

    # Every client built from here on (settings changes rebuild it) reports what it sends.
    monkeypatch.setattr(cognito.CognitoClient, "__init__", watched)
    cognito.reset_client()
    calls = get_budget()
    charge = calls.charge

    def counted(operation: str, **options: Any) -> None:
        record["charged"].append(operation)
        charge(operation, **options)

    monkeypatch.setattr(calls, "charge", counted)
    return record


def _late_refusal(monkeypatch: pytest.MonkeyPatch, send: Any) -> Any:
    """The answer of the same request when only the Cognito call's charge refuses it."""
    from cognito_mfa.throttling import CallBudgetThrottle

    with monkeypatch.context() as patched:
        patched.setattr(CallBudgetThrottle, "allow_request", lambda *_: True)
        return send()


@pytest.mark.django_db
def test_a_start_refused_early_sends_nothing_and_writes_nothing(
    tight: FakeClock,
    sent: dict[str, list[str]],
    alice_api: APIClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    get_budget().charge("AssociateSoftwareToken")  # the starts' share of this second is spent
    sent["charged"].clear()
    events = AuditEvent.objects.count()

    early = alice_api.post(BASE + "enrollments/", {}, format="json")

    _assert_refused(early, "2")
    assert sent == {"cognito": [], "charged": []}  # refused before the flow ran
    assert not Enrollment.objects.exists()
    assert AuditEvent.objects.count() == events

    # The same start refused at the call (the early check left out), on the same budget state.
    monkeypatch.setattr(budget, "_budget", _budget(tight))
    get_budget().charge("AssociateSoftwareToken")
    late = _late_refusal(
        monkeypatch, lambda: alice_api.post(BASE + "enrollments/", {}, format="json")
    )
    assert late.status_code == early.status_code
    assert late.json() == early.json()
    assert dict(late.headers) == dict(early.headers)
    assert not Enrollment.objects.exists()


@pytest.mark.django_db
def test_a_start_is_refused_early_on_the_reserve_while_a_verify_passes(
    tight: FakeClock, sent: dict[str, list[str]], alice_api: APIClient
) -> None:
    started = alice_api.post(BASE + "enrollments/", {}, format="json")
    assert started.status_code == 201, started.content
    # 2 calls a second, half held back: the start took the unreserved half; the reserve is left.
    sent["cognito"].clear()
    sent["charged"].clear()

    refused = alice_api.post(BASE + "enrollments/", {}, format="json")
    _assert_refused(refused, "2")
    assert sent == {"cognito": [], "charged": []}
    assert Enrollment.objects.get().id == uuid.UUID(started.json()["id"])  # not superseded

    verified = alice_api.post(
        f"{BASE}enrollments/{started.json()['id']}/verify/",
        {"user_code": fresh_code()},
        format="json",
    )
    assert verified.status_code == 200, verified.content
    assert verified.json()["mfa_enabled"] is True
    assert sent["charged"] == ["VerifySoftwareToken", "SetUserMFAPreference"]
    assert sent["cognito"] == ["VerifySoftwareToken", "SetUserMFAPreference"]


@pytest.mark.django_db
def test_a_verify_refused_early_sends_nothing_and_answers_as_the_call_would(
    tight: FakeClock,
    sent: dict[str, list[str]],
    alice_api: APIClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started = alice_api.post(BASE + "enrollments/", {}, format="json").json()
    get_budget().charge("VerifySoftwareToken", finishing=True)  # the reserve is spent too
    sent["cognito"].clear()
    sent["charged"].clear()
    events = AuditEvent.objects.count()

    def verify() -> Any:
        return alice_api.post(
            f"{BASE}enrollments/{started['id']}/verify/", {"user_code": "123456"}, format="json"
        )

    early = verify()
    _assert_refused(early, "1")
    assert sent == {"cognito": [], "charged": []}
    enrollment = Enrollment.objects.get()
    assert (enrollment.status, enrollment.attempts) == ("pending", 0)
    assert enrollment.verify_lease_until is None
    assert AuditEvent.objects.count() == events

    late = _late_refusal(monkeypatch, verify)
    assert sent == {"cognito": [], "charged": ["VerifySoftwareToken"]}
    assert late.json() == early.json()
    assert dict(late.headers) == dict(early.headers)


@pytest.mark.django_db
def test_a_challenge_start_and_verify_are_checked_early(
    tight: FakeClock, sent: dict[str, list[str]], mfa_pool: Pool
) -> None:
    get_budget().charge("AssociateSoftwareToken")
    get_budget().charge("VerifySoftwareToken", finishing=True)
    sent["charged"].clear()
    client = APIClient()
    start = client.post(
        BASE + "challenge/enrollments/", {"username": "carol", "session": "x" * 40}, format="json"
    )
    _assert_refused(start, "2")
    verify = client.post(
        f"{BASE}challenge/enrollments/{uuid.uuid4()}/verify/",
        {"challenge_token": "t" * 40, "user_code": "123456"},
        format="json",
    )
    _assert_refused(verify, "1")
    assert sent == {"cognito": [], "charged": []}


@pytest.mark.django_db
def test_a_challenge_verify_that_makes_no_call_gives_its_slot_back(
    tight: FakeClock, mfa_pool: Pool
) -> None:
    get_budget().charge("VerifySoftwareToken", finishing=True)  # one finishing slot left
    client = APIClient()
    for _ in range(3):
        unknown = client.post(
            f"{BASE}challenge/enrollments/{uuid.uuid4()}/verify/",
            {"challenge_token": "t" * 40, "user_code": "123456"},
            format="json",
        )
        assert unknown.status_code == 404, unknown.content  # admitted, no call, slot back
    get_budget().charge("VerifySoftwareToken", finishing=True)
    with pytest.raises(exc.CallBudgetExhausted):
        get_budget().charge("VerifySoftwareToken", finishing=True)


@pytest.mark.django_db
def test_a_refusal_reads_no_user_and_runs_no_query(
    tight: FakeClock, alice_api: APIClient, django_assert_num_queries: Any
) -> None:
    started = alice_api.post(BASE + "enrollments/", {}, format="json").json()
    get_budget().charge("VerifySoftwareToken", finishing=True)  # the whole second is spent

    # In a storm most requests end here: asked right after the token's check, the budget
    # refuses them before the user lookup, the lease or any other statement.
    with django_assert_num_queries(0):
        start = alice_api.post(BASE + "enrollments/", {}, format="json")
        verify = alice_api.post(
            f"{BASE}enrollments/{started['id']}/verify/", {"user_code": "123456"}, format="json"
        )
    _assert_refused(start, "2")
    _assert_refused(verify, "1")


@pytest.mark.django_db
@pytest.mark.parametrize("credentials", ["none", "host token without its session"])
def test_a_request_without_credentials_is_a_401_while_the_budget_is_spent(
    tight: FakeClock, api: APIClient, alice: str, credentials: str
) -> None:
    # Every bad Bearer token: tests/api/test_input_and_auth.py, with the budget refusing.
    get_budget().charge("VerifySoftwareToken", finishing=True)
    headers = {"HTTP_X_COGNITO_ACCESS_TOKEN": alice} if credentials != "none" else {}
    for path in ("enrollments/", f"enrollments/{uuid.uuid4()}/verify/"):
        response = api.post(BASE + path, {"user_code": "123456"}, format="json", **headers)
        assert response.status_code == 401, response.content
        assert response.json()["code"] == "not_authenticated"


@pytest.mark.django_db
def test_a_host_session_is_asked_the_budget_once_its_user_is_read(
    tight: FakeClock, sent: dict[str, list[str]], pool: Pool, alice: str
) -> None:
    from django.contrib.auth import get_user_model

    api = APIClient()
    api.force_login(get_user_model().objects.create_user("alice"))
    started = api.post(BASE + "enrollments/", {}, format="json", HTTP_X_COGNITO_ACCESS_TOKEN=alice)
    assert started.status_code == 201, started.content
    sent["charged"].clear()

    _assert_refused(
        api.post(BASE + "enrollments/", {}, format="json", HTTP_X_COGNITO_ACCESS_TOKEN=alice), "2"
    )
    assert sent["charged"] == []  # refused by the early check, not at the call
    assert Enrollment.objects.get().id == uuid.UUID(started.json()["id"])


@pytest.mark.django_db
def test_a_deactivated_account_may_hear_the_budget_before_its_own_refusal(
    tight: FakeClock, alice_api: APIClient
) -> None:
    started = alice_api.post(BASE + "enrollments/", {}, format="json")
    assert started.status_code == 201, started.content
    user = Enrollment.objects.get().user
    assert user is not None
    user.is_active = False
    user.save()

    # Its token is valid, so the budget is asked before the account is read: 429, then, once
    # the budget has room, the account's own 401.
    _assert_refused(alice_api.post(BASE + "enrollments/", {}, format="json"), "2")
    tight.now += 1.0
    refused = alice_api.post(BASE + "enrollments/", {}, format="json")
    assert refused.status_code == 401, refused.content
    assert refused.json()["code"] == "account_unavailable"


def test_an_admitted_check_takes_nothing(clock: FakeClock) -> None:
    calls = _budget(clock)
    for _ in range(50):
        calls.check("AssociateSoftwareToken")
        calls.check("VerifySoftwareToken", finishing=True)
    assert _admitted(calls, "AssociateSoftwareToken", 10) == 5
    with pytest.raises(exc.CallBudgetExhausted):
        calls.check("AssociateSoftwareToken")
    calls.check("VerifySoftwareToken", finishing=True)  # the reserve is still there
    assert _admitted(calls, "VerifySoftwareToken", 10, finishing=True) == 5
    with pytest.raises(exc.CallBudgetExhausted) as refused:
        calls.check("VerifySoftwareToken", finishing=True)
    assert refused.value.retry_after == 1
    calls.check("GetUser")  # a category without a rate here is never refused


def test_an_admitted_request_keeps_its_slot_for_its_call(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _budget(clock)  # 10 calls a second, starts get 5
    monkeypatch.setattr(budget, "_budget", calls)
    with budget.admissions():
        calls.admit("AssociateSoftwareToken")
        # While the request works, other requests take the rest of the starts' share...
        assert _admitted(calls, "AssociateSoftwareToken", 10) == 4
        # ...and its own call still goes out, on the slot it took when it was admitted.
        calls.charge("AssociateSoftwareToken")
        with pytest.raises(exc.CallBudgetExhausted):
            calls.charge("AssociateSoftwareToken")  # one slot, one call
    assert _admitted(calls, "AssociateSoftwareToken", 10) == 0  # the slot was used: none back


def test_a_slot_the_request_did_not_use_is_given_back(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _budget(clock)
    monkeypatch.setattr(budget, "_budget", calls)
    assert _admitted(calls, "AssociateSoftwareToken", 2) == 2
    with budget.admissions():
        calls.admit("AssociateSoftwareToken")
    # The request ended before its call (a 404, a throttle): its slot is back.
    assert _admitted(calls, "AssociateSoftwareToken", 10) == 3
    with budget.admissions():
        calls.admit("VerifySoftwareToken", finishing=True)
    assert _admitted(calls, "VerifySoftwareToken", 10, finishing=True) == 5


def test_a_slot_is_not_given_back_once_a_call_was_admitted_after_it(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _budget(clock)
    monkeypatch.setattr(budget, "_budget", calls)
    with budget.admissions():
        calls.admit("AssociateSoftwareToken")
        assert _admitted(calls, "AssociateSoftwareToken", 1) == 1  # another request's, later
    # Taking the unused slot out from under the later one would shorten that call's slot and
    # let one more call into this half-second than the rate allows: it stays spent.
    assert _admitted(calls, "AssociateSoftwareToken", 10) == 3


def test_a_slot_that_drained_is_neither_used_nor_given_back(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _budget(clock)
    monkeypatch.setattr(budget, "_budget", calls)
    with budget.admissions():
        calls.admit("AssociateSoftwareToken")  # an empty bucket: the slot drains in 0.1 s
        clock.now += 0.2  # the request waited (a verify lease) past its slot
        assert _admitted(calls, "AssociateSoftwareToken", 10) == 5  # the whole share again
        # Its call is charged afresh rather than sent on a slot the bucket no longer holds.
        with pytest.raises(exc.CallBudgetExhausted):
            calls.charge("AssociateSoftwareToken")
    with budget.admissions():
        calls.admit("VerifySoftwareToken", finishing=True)  # the reserve's first slot
        clock.now += 0.7  # past its slot; the starts' share has drained too
        assert _admitted(calls, "AssociateSoftwareToken", 10) == 5
    # Giving the drained slot back would have handed out a sixth start in this half-second.
    assert _admitted(calls, "AssociateSoftwareToken", 10) == 0


def test_admit_outside_a_request_takes_nothing(clock: FakeClock) -> None:
    calls = _budget(clock)
    for _ in range(10):
        calls.admit("AssociateSoftwareToken")  # no request under way: a check
    assert _admitted(calls, "AssociateSoftwareToken", 10) == 5


@pytest.mark.django_db
def test_an_admitted_start_is_not_refused_for_calls_made_while_it_works(
    tight: FakeClock,
    sent: dict[str, list[str]],
    alice_api: APIClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cognito_mfa.adapter import DefaultAdapter

    lookup = DefaultAdapter.get_user_for_token
    others: list[str] = []

    def busy_site(self: DefaultAdapter, token: Any) -> Any:
        # Another process's start asks for the same share while this request reads its user.
        try:
            contextvars.Context().run(get_budget().charge, "AssociateSoftwareToken")
            others.append("admitted")
        except exc.CallBudgetExhausted:
            others.append("refused")
        return lookup(self, token)

    monkeypatch.setattr(DefaultAdapter, "get_user_for_token", busy_site)
    started = alice_api.post(BASE + "enrollments/", {}, format="json")

    assert started.status_code == 201, started.content  # admitted, so never refused late
    assert others == ["refused"]  # the share's one slot was this request's
    assert sent["cognito"] == ["AssociateSoftwareToken"]


@pytest.mark.django_db
def test_a_verify_that_makes_no_call_gives_its_slot_back(
    tight: FakeClock, alice_api: APIClient
) -> None:
    get_budget().charge("VerifySoftwareToken", finishing=True)  # one finishing slot left
    for _ in range(3):
        unknown = alice_api.post(
            f"{BASE}enrollments/{uuid.uuid4()}/verify/", {"user_code": "123456"}, format="json"
        )
        assert unknown.status_code == 404, unknown.content  # never a 429: the slot came back
    get_budget().charge("VerifySoftwareToken", finishing=True)
    with pytest.raises(exc.CallBudgetExhausted):
        get_budget().charge("VerifySoftwareToken", finishing=True)


def test_the_cli_mirror_refused_says_so_and_can_opt_out(
    tight: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    get_budget().charge("VerifySoftwareToken", finishing=True)
    get_budget().charge("VerifySoftwareToken", finishing=True)
    with pytest.raises(CommandError) as refused:
        call_command("verify_software_token", "--session", "s" * 40, "--user-code", "123456")
    assert refused.value.returncode == 254
    assert "--no-call-budget" in str(refused.value)

    sent: list[bool] = []

    def raw(self: Any, **kwargs: Any) -> cognito.RawVerifyResponse:
        sent.append(kwargs["charged"])
        return cognito.RawVerifyResponse(status="SUCCESS", session=None)

    monkeypatch.setattr(cognito.CognitoClient, "verify_software_token_raw", raw)
    call_command(
        "verify_software_token", "--session", "s" * 40, "--user-code", "123456", "--no-call-budget"
    )
    assert sent == [False]


# --- throttled anyway: no retry, 503, the budget backs off ---------------------------------


class _Throttling(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    calls: list[str]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.calls.append(self.headers.get("X-Amz-Target", "").rpartition(".")[2])
        body = json.dumps({"__type": "TooManyRequestsException", "message": "Rate exceeded"})
        self.send_response(400)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())


@pytest.fixture
def throttling_cognito(settings: Any) -> Iterator[list[str]]:
    calls: list[str] = []
    handler = type("Handler", (_Throttling,), {"calls": calls})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.COGNITO_MFA_ENDPOINT_URL = f"http://127.0.0.1:{server.server_address[1]}"
    settings.COGNITO_MFA_MAX_RETRY_ATTEMPTS = 3
    settings.COGNITO_MFA_UNAVAILABLE_RETRY_AFTER = 7
    try:
        yield calls
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("method", "kwargs"),
    [
        ("associate_software_token", {"access_token": "t"}),
        ("associate_software_token", {"session": "s" * 40}),
        ("verify_software_token", {"access_token": "t", "user_code": "123456"}),
        ("respond_to_mfa_setup", {"username": "u", "session": "s" * 40, "client_id": "c"}),
    ],
)
def test_a_throttled_call_that_spends_a_code_session_or_key_is_sent_once(
    throttling_cognito: list[str], method: str, kwargs: dict[str, Any]
) -> None:
    client = cognito.CognitoClient(cognito.build_boto3_client())
    with pytest.raises(exc.CognitoUnavailable) as unavailable:
        getattr(client, method)(**kwargs)
    assert len(throttling_cognito) == 1
    assert unavailable.value.retry_after == 7


def test_a_throttled_safe_call_keeps_its_retries(throttling_cognito: list[str]) -> None:
    client = cognito.CognitoClient(cognito.build_boto3_client())
    with pytest.raises(exc.CognitoUnavailable):
        client.get_user(access_token="t")
    assert throttling_cognito == ["GetUser"] * 3


def test_throttling_lowers_the_shared_rate(throttling_cognito: list[str], settings: Any) -> None:
    settings.COGNITO_MFA_CALL_BUDGET_RATES = {"UserResourceUpdate": 10}
    client = cognito.CognitoClient(cognito.build_boto3_client())
    with pytest.raises(exc.CognitoUnavailable):
        client.verify_software_token(access_token="t", user_code="123456")
    state = get_budget().state
    assert state.decide("UserResourceUpdate", "acquire", 10, 1.0).factor == pytest.approx(
        0.5, abs=0.01
    )


@pytest.mark.django_db
def test_a_verify_cognito_throttled_is_a_503_with_retry_after(
    alice_api: APIClient, settings: Any
) -> None:
    settings.COGNITO_MFA_UNAVAILABLE_RETRY_AFTER = 7
    started = alice_api.post(BASE + "enrollments/", {}, format="json").json()

    boto = cognito.get_client().client
    with Stubber(boto) as stub:
        stub.add_client_error(
            "verify_software_token",
            service_error_code="TooManyRequestsException",
            http_status_code=400,
        )
        response = alice_api.post(
            f"{BASE}enrollments/{started['id']}/verify/", {"user_code": fresh_code()}, format="json"
        )
    assert response.status_code == 503, response.content
    assert response.json()["code"] == "cognito_unavailable"
    assert response["Retry-After"] == "7"
    assert Enrollment.objects.get().status == "pending"


# --- the system checks ------------------------------------------------------------------------


def test_w003_a_process_local_cache_holds_the_budget_per_process(settings: Any) -> None:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert [message.id for message in check_call_budget_shared()] == ["cognito_mfa.W003"]
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",
        }
    }
    assert check_call_budget_shared() == []
    settings.COGNITO_MFA_CALL_BUDGET_RATES = dict.fromkeys(budget.DEFAULT_RATES)
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert check_call_budget_shared() == []  # nothing budgeted


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CALL_BUDGET_RATES", {"UserResourceUpdate": 0}),
        ("CALL_BUDGET_RATES", {"UserRaed": 10}),
        ("CALL_BUDGET_RATES", "20/s"),
        ("CALL_BUDGET_RATES", {"UserResourceUpdate": 1}),  # 1/s with half held back: no start
        ("CALL_BUDGET_CACHE", "missing"),
    ],
)
def test_e011_a_call_budget_setting_that_cannot_work(settings: Any, name: str, value: Any) -> None:
    setattr(settings, f"COGNITO_MFA_{name}", value)
    assert "cognito_mfa.E011" in [message.id for message in check_call_budget()]


# --- Redis: one budget for every process ------------------------------------------------------

REDIS_URL = os.environ.get("COGNITO_MFA_TEST_REDIS_URL", "")

_HAMMER = """
import json, sys, time
import django
django.setup()
from django.test.utils import override_settings
from cognito_mfa import exceptions as exc
from cognito_mfa.budget import CallBudget, RedisState
caches = {"budget": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                     "LOCATION": sys.argv[1], "KEY_PREFIX": sys.argv[2]}}
with override_settings(CACHES=caches, COGNITO_MFA_CALL_BUDGET_CACHE="budget",
                       COGNITO_MFA_CALL_BUDGET_RATES={"UserResourceUpdate": 20}):
    calls = CallBudget(RedisState("budget"))
    calls.state.client.ping()
    print("ready", flush=True)
    start = float(sys.stdin.readline())
    while time.time() < start:
        time.sleep(0.001)
    admitted = []
    while time.time() < start + 2.0:
        asked = time.time()
        try:
            calls.charge("VerifySoftwareToken", finishing=True)
        except exc.CallBudgetExhausted:
            continue
        admitted.append((asked, time.time()))
print(json.dumps(admitted))
"""


@pytest.fixture
def redis_url() -> str:
    require_service("Redis", bool(REDIS_URL), "set COGNITO_MFA_TEST_REDIS_URL")
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as error:
        require_service("Redis", False, f"{REDIS_URL}: {error}")
    return REDIS_URL


@pytest.mark.redis
def test_two_processes_never_admit_more_than_the_rate_between_them(redis_url: str) -> None:
    prefix = f"budget-{secrets.token_hex(4)}"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _HAMMER, redis_url, prefix],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for child in children:  # both set up and connected, then both ask at once
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
    start = time.time() + 0.2
    for child in children:
        assert child.stdin is not None
        child.stdin.write(f"{start!r}\n")
        child.stdin.flush()
    # Each admission happened somewhere between the time its process asked and the time the
    # answer came back; the bounds below hold for any moment in that interval, so a process
    # that stalls on a loaded machine cannot make the budget look wrong.
    admitted: list[tuple[float, float]] = []
    for child in children:
        out, _ = child.communicate(timeout=60)
        assert child.returncode == 0
        mine = [tuple(pair) for pair in json.loads(out)]
        assert mine  # each process got its share
        admitted.extend(mine)
    admitted.sort()
    last_answer = max(answered for _, answered in admitted)
    # A full bucket (one second's calls) at once, then 20 a second: over 2 s, 20 + 40.
    assert 55 <= len(admitted) <= 20 + 20 * (last_answer - start) + 1
    # Any interval of w seconds holds at most 20 * (w + 1) calls: one second's bucket, refilled.
    # Sorted by when they were asked, so the ones from index on were asked at first or later.
    for index, (first, _) in enumerate(admitted):
        for width in (0.25, 0.5, 1.0):
            inside = [a for a, b in admitted[index:] if b <= first + width]
            assert len(inside) <= 20 * (width + 1) + 1, (width, len(inside))


@pytest.fixture
def redis_budget_cache(redis_url: str, settings: Any) -> str:
    """The budget kept in Redis under a cache alias "budget" of its own key prefix."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "budget": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": f"budget-{secrets.token_hex(4)}",
        },
    }
    settings.COGNITO_MFA_CALL_BUDGET_CACHE = "budget"
    return "budget"


# The Redis tests below run at 2 calls a second on Redis's own clock: a slot drains in 0.5 s.
SLOT_S = 0.5


def _redis_clock(state: budget.RedisState) -> float:
    seconds, microseconds = state.client.time()
    return seconds + microseconds / 1e6


def _inside_one_slot(state: budget.RedisState, scenario: Callable[[], None]) -> None:
    """Run ``scenario`` on an empty bucket; a failure counts if the run took under a slot.

    Each scenario takes some ten round trips (about 10 ms) and assumes no slot drains
    meanwhile. A machine that stalls for half a second breaks that premise, not the budget:
    such a run is repeated, up to three times in all. A wrong budget fails every run.
    """
    for _ in range(3):
        state.client.delete(*state._keys("UserResourceUpdate"))
        started = _redis_clock(state)
        try:
            scenario()
        except (AssertionError, pytest.fail.Exception):
            if _redis_clock(state) - started < SLOT_S:
                raise
        else:
            return
    pytest.fail("every run took longer than one slot of the budget: the machine stalled")


@pytest.mark.redis
def test_redis_budget_keeps_the_reserve_and_backs_off_for_everyone(
    redis_budget_cache: str, settings: Any
) -> None:
    # Starts get one slot, the reserve another.
    settings.COGNITO_MFA_CALL_BUDGET_RATES = {"UserResourceUpdate": 2}
    settings.COGNITO_MFA_CALL_BUDGET_RESERVE = 0.5
    state = budget.RedisState("budget")
    one, other = CallBudget(state), CallBudget(budget.RedisState("budget"))  # two processes

    def scenario() -> None:
        assert _admitted(one, "AssociateSoftwareToken", 3) == 1
        assert _admitted(other, "AssociateSoftwareToken", 3) == 0  # the same bucket
        # ... and the same queue of refused starts, one a second after the first at ~1.5 s:
        # the sixth refused start is told to come back after ~6.5 s.
        with pytest.raises(exc.CallBudgetExhausted) as refused:
            one.charge("AssociateSoftwareToken")
        assert refused.value.retry_after in (6, 7)
        # The starts left the reserve's slot to the other process's verify.
        assert _admitted(other, "VerifySoftwareToken", 3, finishing=True) == 1
        one.throttled("VerifySoftwareToken")
        decision = other.state.decide("UserResourceUpdate", "acquire", 2, 1.0)
        # Halved, and recovering by at most a slot's worth of additive increase since.
        assert decision.factor == pytest.approx(0.5, abs=budget.INCREASE_PER_S * SLOT_S)
        assert not decision.admitted
        assert decision.wait_s > 0

    _inside_one_slot(state, scenario)
    assert isinstance(get_budget().state, budget.RedisState)


def _counted_scripts(state: budget.RedisState) -> list[str]:
    """The mode of every script ``state`` runs from here on, in order (one per round trip)."""
    script, scripts = state.script, []

    def counted(**kwargs: Any) -> Any:
        scripts.append(kwargs["args"][0])
        return script(**kwargs)

    state.script = counted  # type: ignore[assignment]
    return scripts


@pytest.mark.redis
def test_redis_check_is_one_script_that_leaves_the_bucket_alone(
    redis_budget_cache: str, settings: Any
) -> None:
    # One start, then one finishing call.
    settings.COGNITO_MFA_CALL_BUDGET_RATES = {"UserResourceUpdate": 2}
    settings.COGNITO_MFA_CALL_BUDGET_RESERVE = 0.5
    state = budget.RedisState("budget")
    calls = CallBudget(state)
    scripts = _counted_scripts(state)
    tat = state._keys("UserResourceUpdate")[0]  # the bucket's arrival time

    def scenario() -> None:
        scripts.clear()
        assert _admitted(calls, "AssociateSoftwareToken", 1) == 1
        before = state.client.get(tat)
        for _ in range(5):
            calls.check("VerifySoftwareToken", finishing=True)
        assert state.client.get(tat) == before
        assert scripts == ["acquire"] + ["check"] * 5  # one round trip each
        # The reserve's slot was still there after five checks; now the bucket is full.
        assert _admitted(calls, "VerifySoftwareToken", 3, finishing=True) == 1
        with pytest.raises(exc.CallBudgetExhausted):
            calls.check("VerifySoftwareToken", finishing=True)
        with pytest.raises(exc.CallBudgetExhausted):
            calls.check("AssociateSoftwareToken")

    _inside_one_slot(state, scenario)


@pytest.mark.redis
def test_redis_admission_is_the_call_slot_and_comes_back_unused(
    redis_budget_cache: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One start a second, or two finishing calls.
    settings.COGNITO_MFA_CALL_BUDGET_RATES = {"UserResourceUpdate": 2}
    settings.COGNITO_MFA_CALL_BUDGET_RESERVE = 0.5
    state = budget.RedisState("budget")
    calls = CallBudget(state)
    monkeypatch.setattr(budget, "_budget", calls)
    scripts = _counted_scripts(state)

    def scenario() -> None:
        scripts.clear()
        with budget.admissions():
            calls.admit("AssociateSoftwareToken")
            calls.charge("AssociateSoftwareToken")  # the admitted call: no second round trip
        assert scripts == ["acquire"]
        assert _admitted(calls, "AssociateSoftwareToken", 3) == 0  # the starts' share is spent
        with budget.admissions():
            calls.admit("VerifySoftwareToken", finishing=True)  # the reserve's slot
        assert scripts[-1] == "give_back"
        assert _admitted(calls, "VerifySoftwareToken", 3, finishing=True) == 1  # given back

    _inside_one_slot(state, scenario)


@pytest.mark.redis
def test_redis_keeps_an_unused_slot_spent_once_a_call_was_admitted_after_it(
    redis_budget_cache: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.COGNITO_MFA_CALL_BUDGET_RATES = {"UserResourceUpdate": 2}
    settings.COGNITO_MFA_CALL_BUDGET_RESERVE = 0.5
    state = budget.RedisState("budget")
    calls = CallBudget(state)
    monkeypatch.setattr(budget, "_budget", calls)

    def scenario() -> None:
        with budget.admissions():
            calls.admit("AssociateSoftwareToken")
            assert _admitted(calls, "VerifySoftwareToken", 1, finishing=True) == 1  # later
        # The bucket is full: the start's unused slot was not taken out from under the
        # verify's.
        assert _admitted(calls, "VerifySoftwareToken", 3, finishing=True) == 0

    _inside_one_slot(state, scenario)
