"""Django's error report of an unexpected failure shows no credential in its frame locals.

The HTML report (the DEBUG page, ``AdminEmailHandler(include_html=True)``, trackers reading
frame locals) lists every local of every frame; the flows and the Cognito client mark the
ones that hold a token, a Session, the secret, the code or the decrypted credential.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import OperationalError
from django.views.debug import ExceptionReporter
from rest_framework.test import APIClient

from cognito_mfa import flows
from cognito_mfa.models import Enrollment, EnrollmentQuerySet
from cognito_mfa.tokens import validate_access_token
from tests.support.challenge import mfa_setup_session
from tests.support.cognito import MOTO_SECRET, Pool, fresh_code

BASE = "/api/mfa/"


def _database_gone(*args: Any, **kwargs: Any) -> Any:
    raise OperationalError("server closed the connection unexpectedly")


def _report(failure: pytest.ExceptionInfo[BaseException]) -> tuple[str, str]:
    """The text and HTML reports from the flow's frame down (the test's own frame, whose
    locals hold the token it signed in with, is left out)."""
    tb = failure.tb.tb_next
    reporter = ExceptionReporter(None, failure.type, failure.value, tb, is_email=True)
    return reporter.get_traceback_text(), reporter.get_traceback_html()


@pytest.mark.django_db
def test_error_report_of_a_failed_verify_shows_neither_credential_nor_code(
    pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database goes away after Cognito said SUCCESS: ``_verify_leased`` then holds the
    decrypted access token and the user's code."""
    pool.create_user("alice", email="alice@example.com")
    token = pool.access_token("alice")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    started = api.post(BASE + "enrollments/", {}, format="json").json()
    monkeypatch.setattr(EnrollmentQuerySet, "mark_verified", _database_gone)
    code = fresh_code()
    enrollment = Enrollment.objects.get(pk=started["id"])

    with pytest.raises(OperationalError) as failure:
        flows.verify_enrollment(flows.Context.build("api"), enrollment=enrollment, user_code=code)

    text, html = _report(failure)
    assert "_verify_leased" in text  # the frame is in the report, its locals hidden
    assert token not in text
    assert code not in text
    assert token.split(".")[2] not in html
    assert f"&#x27;{code}&#x27;" not in html


@pytest.mark.django_db
def test_error_report_of_a_failed_start_shows_neither_token_nor_secret(
    pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database goes away after AssociateSoftwareToken: the start holds the secret, the
    otpauth URI and the access token."""
    pool.create_user("alice", email="alice@example.com")
    raw = pool.access_token("alice")
    token = validate_access_token(raw)
    user = get_user_model().objects.create(username="alice")
    monkeypatch.setattr(EnrollmentQuerySet, "create", _database_gone)

    with pytest.raises(OperationalError) as failure:
        flows.start_enrollment(flows.Context.build("api"), user=user, token=token)

    text, html = _report(failure)
    assert "start_enrollment" in text
    for secret in (MOTO_SECRET, raw.split(".")[2]):
        assert secret not in text
        assert secret not in html


@pytest.mark.django_db
def test_error_report_of_the_admin_verify_page_masks_the_posted_code(
    alice_api: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.test import Client
    from django.views.debug import SafeExceptionReporterFilter

    from tests.support.admin import confirm_action, make_staff, verify_with_code

    started = alice_api.post(BASE + "enrollments/", {}, format="json").json()

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(flows, "verify_enrollment", crash)
    client = Client(raise_request_exception=False)
    client.force_login(make_staff("helpdesk"))
    code = fresh_code()
    response = verify_with_code(client, started["id"], user_code=code, friendly_device_name="x")
    assert response.status_code == 500
    posted = SafeExceptionReporterFilter().get_post_parameters(response.wsgi_request)
    assert posted["user_code"] != code
    assert set(posted["user_code"]) == {"*"}
    assert posted["friendly_device_name"] == "x"  # only the code is hidden

    # The changelist takes no code any more, so it hides nothing of what is posted to it.
    listed = confirm_action(client, "verify_device", [started["id"]], user_code=code)
    assert listed.status_code == 302
    assert not hasattr(listed.wsgi_request, "sensitive_post_parameters")


def _report_from_the_view(failure: pytest.ExceptionInfo[BaseException]) -> str:
    """The HTML report from the view's ``post`` down (the frames above it are Django's and the
    test client's)."""
    tb = failure.tb
    while tb is not None and not (
        tb.tb_frame.f_code.co_name == "post" and tb.tb_frame.f_code.co_filename.endswith("views.py")
    ):
        tb = tb.tb_next
    assert tb is not None, "the view's frame is not in the traceback"
    reporter = ExceptionReporter(None, failure.type, failure.value, tb, is_email=True)
    return reporter.get_traceback_html()


@pytest.mark.django_db
def test_error_report_of_a_failed_challenge_verify_hides_the_views_locals(
    mfa_pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The view's own locals (the validated body: challenge token and code) are hidden too."""
    session = mfa_setup_session(mfa_pool, "gina")
    api = APIClient()
    started = api.post(
        BASE + "challenge/enrollments/", {"username": "gina", "session": session}, format="json"
    ).json()
    monkeypatch.setattr(EnrollmentQuerySet, "mark_verified", _database_gone)
    code = fresh_code()
    body = {"challenge_token": started["challenge_token"], "user_code": code}

    with pytest.raises(OperationalError) as failure:
        api.post(f"{BASE}challenge/enrollments/{started['id']}/verify/", body, format="json")

    html = _report_from_the_view(failure)
    assert "ChallengeVerifyView" in html or "views.py" in html
    assert started["challenge_token"] not in html
    assert f"&#x27;{code}&#x27;" not in html


@pytest.mark.django_db
def test_error_report_of_a_failing_encryption_hides_the_credential(
    pool: Pool, settings: Any
) -> None:
    """A key that is not a Fernet key (E005 at start-up, but a server may run without the
    checks): the encryption fails with the user's access token in its ``plaintext``."""
    pool.create_user("alice", email="alice@example.com")
    raw = pool.access_token("alice")
    token = validate_access_token(raw)
    user = get_user_model().objects.create(username="alice")
    settings.COGNITO_MFA_ENCRYPTION_KEYS = ["not-a-fernet-key"]

    with pytest.raises(ValueError) as failure:
        flows.start_enrollment(flows.Context.build("api"), user=user, token=token)

    text, html = _report(failure)
    assert "encrypt" in text
    assert raw.split(".")[2] not in html
    assert MOTO_SECRET not in html


@pytest.mark.django_db
def test_error_report_of_a_failing_otpauth_uri_hides_the_secret(
    pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cognito_mfa import otpauth

    pool.create_user("alice", email="alice@example.com")
    token = validate_access_token(pool.access_token("alice"))
    user = get_user_model().objects.create(username="alice")

    def failing_quote(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("quoting failed")

    monkeypatch.setattr(otpauth, "quote", failing_quote)
    with pytest.raises(RuntimeError) as failure:
        flows.start_enrollment(flows.Context.build("api"), user=user, token=token)

    text, html = _report(failure)
    assert "build_otpauth_uri" in text
    assert MOTO_SECRET not in html


def _report_from(failure: pytest.ExceptionInfo[BaseException], function: str) -> str:
    """The HTML report from the frame of ``function`` down."""
    tb = failure.tb
    while tb is not None and tb.tb_frame.f_code.co_name != function:
        tb = tb.tb_next
    assert tb is not None, f"{function} is not in the traceback"
    reporter = ExceptionReporter(None, failure.type, failure.value, tb, is_email=True)
    return reporter.get_traceback_html()


@pytest.mark.django_db
def test_error_report_of_a_failing_user_lookup_hides_the_bearer_token(
    pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database goes away while the adapter looks the user up: ``authenticate`` holds the
    Authorization header and the validated token."""
    from tests.support.cognito import TestAdapter

    pool.create_user("alice")
    token = pool.access_token("alice")
    monkeypatch.setattr(TestAdapter, "get_user_for_token", _database_gone)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    with pytest.raises(OperationalError) as failure:
        api.get(BASE + "enrollments/")

    html = _report_from(failure, "authenticate")
    assert "authenticate" in html
    assert token.split(".")[2] not in html
    assert token.split(".")[1] not in html


@pytest.mark.django_db
def test_error_report_of_a_failing_token_check_hides_the_token(
    pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signing keys cannot be read: the validator's frames hold the raw token."""
    from cognito_mfa.tokens import jwks_cache

    pool.create_user("alice")
    token = pool.access_token("alice")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("key store broken")

    monkeypatch.setattr(jwks_cache, "get_key_and_generation", broken)
    with pytest.raises(RuntimeError) as failure:
        validate_access_token(token)

    html = _report_from(failure, "validate_access_token")
    assert "_validate_in_full" in html
    assert token.split(".")[2] not in html
    assert token.split(".")[1] not in html


@pytest.mark.django_db
def test_error_report_after_an_admin_verify_of_a_sign_in_hides_its_tokens(
    mfa_pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The admin's page fails after Cognito handed out the sign-in's tokens: the verify page's
    ``_verify_with_code`` holds them in its result object, and the form holds the code."""
    from django.test import Client

    from cognito_mfa.admin import EnrollmentAdmin
    from tests.support.admin import make_staff, verify_with_code

    session = mfa_setup_session(mfa_pool, "gina")
    started = (
        APIClient()
        .post(
            BASE + "challenge/enrollments/", {"username": "gina", "session": session}, format="json"
        )
        .json()
    )
    handed_out: list[Any] = []
    original = flows.verify_enrollment

    def keep(*args: Any, **kwargs: Any) -> Any:
        verified = original(*args, **kwargs)
        handed_out.append(verified)
        return verified

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the admin log went away")

    monkeypatch.setattr(flows, "verify_enrollment", keep)
    monkeypatch.setattr(EnrollmentAdmin, "log_change", crash)
    client = Client(raise_request_exception=True)
    client.force_login(make_staff("helpdesk"))
    code = fresh_code()
    with pytest.raises(RuntimeError) as failure:
        verify_with_code(client, started["id"], user_code=code)

    (verified,) = handed_out
    tokens = verified.authentication_result
    assert tokens is not None
    assert tokens["AccessToken"]
    for text in (_report_from(failure, "_verify_with_code"), repr(verified)):
        for name in ("AccessToken", "IdToken", "RefreshToken"):
            assert tokens[name] not in text
            assert tokens[name][-20:] not in text
        assert f"&#x27;{code}&#x27;" not in text


def test_result_objects_show_no_secret_in_their_repr() -> None:
    from cognito_mfa.cognito import AssociateResult, AuthStep, VerifyResult

    started = flows.StartedEnrollment(
        enrollment=Enrollment(cognito_username="x"),
        secret_code="SECRETSECRET",
        otpauth_uri="otpauth://totp/x?secret=SECRETSECRET",
        challenge_token="challenge-token-value",
    )
    shown = " ".join(
        repr(value)
        for value in (
            started,
            AssociateResult(secret_code="SECRETSECRET", session="session-value"),
            VerifyResult(session="session-value"),
            AuthStep(
                challenge_name=None,
                session="session-value",
                challenge_parameters={"USER_ID_FOR_SRP": "x"},
                authentication_result={"AccessToken": "token-value"},
            ),
        )
    )
    for secret in ("SECRETSECRET", "challenge-token-value", "session-value", "token-value"):
        assert secret not in shown
