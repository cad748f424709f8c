"""The example site's page and sign-in endpoints, and the demo's seeding, on in-process moto."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from example_project import demo
from example_project.demo import NEW_USER, READY_USER, SeededPool, pool_settings, seed_pool
from tests.support.cognito import fresh_code, wrong_code

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_pool(moto_client: Any, settings: Any) -> SeededPool:
    seeded = seed_pool(moto_client)
    settings.COGNITO_MFA_REGION = "us-east-1"
    settings.COGNITO_MFA_USER_POOL_ID = seeded.pool_id
    settings.COGNITO_MFA_APP_CLIENT_IDS = [seeded.client_id]
    return seeded


@pytest.fixture
def client() -> Client:
    return Client(enforce_csrf_checks=True)


def post(client: Client, path: str, body: Any) -> Any:
    client.get("/")  # the page sets the CSRF cookie the endpoints require
    return client.post(
        path,
        data=body if isinstance(body, str) else json.dumps(body),
        content_type="application/json",
        HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value,
    )


def sign_in(client: Client, username: str, password: str) -> Any:
    return post(client, "/demo/sign-in/", {"username": username, "password": password})


def test_seeded_pool_requires_totp_and_holds_both_users(
    moto_client: Any, demo_pool: SeededPool
) -> None:
    config = moto_client.get_user_pool_mfa_config(UserPoolId=demo_pool.pool_id)
    assert config["MfaConfiguration"] == "ON"
    assert config["SoftwareTokenMfaConfiguration"] == {"Enabled": True}
    app = moto_client.describe_user_pool_client(
        UserPoolId=demo_pool.pool_id, ClientId=demo_pool.client_id
    )["UserPoolClient"]
    assert "ALLOW_USER_PASSWORD_AUTH" in app["ExplicitAuthFlows"]
    assert "ClientSecret" not in app
    statuses = {
        user.username: moto_client.admin_get_user(
            UserPoolId=demo_pool.pool_id, Username=user.username
        )["UserStatus"]
        for user in demo.DEMO_USERS
    }
    assert statuses == {
        READY_USER.username: "CONFIRMED",
        NEW_USER.username: "FORCE_CHANGE_PASSWORD",
    }


def test_pool_settings_point_endpoint_and_jwks_at_moto() -> None:
    pool = SeededPool(pool_id="us-east-1_abc", client_id="client1")
    assert pool_settings("http://127.0.0.1:5555", pool) == {
        "COGNITO_MFA_REGION": "us-east-1",
        "COGNITO_MFA_USER_POOL_ID": "us-east-1_abc",
        "COGNITO_MFA_APP_CLIENT_IDS": "client1",
        "COGNITO_MFA_ENDPOINT_URL": "http://127.0.0.1:5555",
        "COGNITO_MFA_JWKS_URL": "http://127.0.0.1:5555/us-east-1_abc/.well-known/jwks.json",
    }


def test_real_pool_needs_all_three_variables(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COGNITO_MFA_USER_POOL_ID", "eu-west-1_AbC")
    monkeypatch.delenv("COGNITO_MFA_REGION", raising=False)
    monkeypatch.delenv("COGNITO_MFA_APP_CLIENT_IDS", raising=False)
    assert demo.real_pool_configured()
    assert demo.main(["--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "COGNITO_MFA_REGION" in err
    assert "COGNITO_MFA_APP_CLIENT_IDS" in err


def test_page_is_served_with_a_strict_content_security_policy(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert "img-src 'self' data:" in response["Content-Security-Policy"]
    assert b'name="csrf-token"' in response.content
    assert b"/static/example_project/app.js" in response.content


def test_sign_in_returns_the_access_token_uncached(client: Client, demo_pool: SeededPool) -> None:
    response = sign_in(client, READY_USER.username, READY_USER.password)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "signed_in"
    assert body["username"] == READY_USER.username
    assert body["access_token"].startswith("eyJ")
    assert set(body) == {"status", "username", "access_token", "expires_in"}
    assert "no-store" in response["Cache-Control"]


@pytest.mark.parametrize(
    ("username", "password"),
    [(READY_USER.username, "Wrong-password-1"), ("nobody", "Wrong-password-1")],
)
def test_wrong_password_and_unknown_user_get_one_answer(
    client: Client, demo_pool: SeededPool, username: str, password: str
) -> None:
    response = sign_in(client, username, password)
    assert response.status_code == 401
    assert response.json() == {
        "code": "sign_in_failed",
        "detail": "Incorrect username or password.",
    }


@pytest.mark.parametrize(
    "body",
    ["not json", "[1, 2]", {"username": "alice"}, {"username": 7, "password": "x"}],
)
def test_bad_bodies_are_400_invalid(client: Client, demo_pool: SeededPool, body: Any) -> None:
    response = post(client, "/demo/sign-in/", body)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_endpoints_require_the_csrf_token(client: Client, demo_pool: SeededPool) -> None:
    response = client.post(
        "/demo/sign-in/",
        data=json.dumps({"username": "alice", "password": READY_USER.password}),
        content_type="application/json",
    )
    assert response.status_code == 403


def test_new_password_then_mfa_setup_answered_by_the_page(
    client: Client, demo_pool: SeededPool, settings: Any
) -> None:
    """Without CHALLENGE_COMPLETE_AUTH the page answers MFA_SETUP through /demo/respond/."""
    settings.COGNITO_MFA_CHALLENGE_COMPLETE_AUTH = False
    first = sign_in(client, NEW_USER.username, NEW_USER.password).json()
    assert first["challenge_name"] == "NEW_PASSWORD_REQUIRED"
    respond = {"challenge_name": "NEW_PASSWORD_REQUIRED", "session": first["session"]}
    respond["username"] = first["username"]

    weak = post(client, "/demo/respond/", {**respond, "new_password": "weak"})
    assert weak.status_code == 400
    assert weak.json()["code"] == "invalid"
    assert list(weak.json()["fields"]) == ["new_password"]

    setup = post(client, "/demo/respond/", {**respond, "new_password": "Bob-chosen-Passw0rd"})
    setup_body = setup.json()
    assert setup_body["challenge_name"] == "MFA_SETUP"
    assert setup_body["mfas_can_setup"] == ["SOFTWARE_TOKEN_MFA"]

    started = post(
        client,
        "/api/mfa/challenge/enrollments/",
        {"username": setup_body["username"], "session": setup_body["session"]},
    ).json()
    verified = post(
        client,
        f"/api/mfa/challenge/enrollments/{started['id']}/verify/",
        {"challenge_token": started["challenge_token"], "user_code": fresh_code()},
    ).json()
    assert verified["authentication_result"] is None
    done = post(
        client,
        "/demo/respond/",
        {
            "challenge_name": "MFA_SETUP",
            "session": verified["session"],
            "username": setup_body["username"],
        },
    )
    assert done.status_code == 200
    assert done.json()["status"] == "signed_in"


def test_software_token_challenge_checks_the_code(
    client: Client, demo_pool: SeededPool, moto_client: Any
) -> None:
    token = sign_in(client, READY_USER.username, READY_USER.password).json()["access_token"]
    moto_client.associate_software_token(AccessToken=token)
    moto_client.verify_software_token(AccessToken=token, UserCode=fresh_code())
    moto_client.set_user_mfa_preference(
        AccessToken=token, SoftwareTokenMfaSettings={"Enabled": True, "PreferredMfa": True}
    )
    challenge = sign_in(client, READY_USER.username, READY_USER.password).json()
    assert challenge["challenge_name"] == "SOFTWARE_TOKEN_MFA"
    respond = {
        "challenge_name": "SOFTWARE_TOKEN_MFA",
        "session": challenge["session"],
        "username": challenge["username"],
    }
    wrong = post(client, "/demo/respond/", {**respond, "code": wrong_code()})
    assert wrong.status_code == 400
    assert wrong.json()["code"] == "invalid_code"
    right = post(client, "/demo/respond/", {**respond, "code": fresh_code()})
    assert right.json()["status"] == "signed_in"


def test_unknown_challenge_name_is_rejected(client: Client, demo_pool: SeededPool) -> None:
    response = post(
        client,
        "/demo/respond/",
        {"challenge_name": "SMS_MFA", "session": "s", "username": READY_USER.username},
    )
    assert response.status_code == 400
    assert response.json()["fields"] == {
        "challenge_name": ["This challenge is not supported here."]
    }
