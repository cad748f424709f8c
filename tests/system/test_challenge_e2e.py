"""The sign-in MFA_SETUP challenge over real HTTP: requests -> live Django -> moto server.

A FORCE_CHANGE_PASSWORD user signs in, sets a new password, is asked to set up MFA, and the
SPA enrolls through the app's two challenge endpoints. The run also searches the database,
every log record and every signal kwarg for the Session, the TOTP secret, the challenge token
and the tokens.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import requests

from cognito_mfa import crypto, flows
from cognito_mfa.models import AuditEvent, Enrollment
from tests.support.challenge import Spa, configure
from tests.support.cognito import create_pool, fresh_code, moto_server_client, wrong_code
from tests.support.sentinels import (
    LogCapture,
    all_loggers_at_debug,
    assert_absent,
    database_dump,
    signal_kwargs_text,
)
from tests.support.signals import SignalLog

pytestmark = pytest.mark.django_db(transaction=True)

MODES = {
    # the app returns the Session and the SPA answers RespondToAuthChallenge itself
    "spa_responds": {"with_secret": False, "complete_auth": False},
    # COGNITO_MFA_CHALLENGE_COMPLETE_AUTH=True: the app answers and returns the tokens
    "app_completes": {"with_secret": False, "complete_auth": True},
    # a confidential client: only the server can compute SECRET_HASH, so the app completes
    # the challenge although the setting is left at its default
    "confidential_client": {"with_secret": True, "complete_auth": None},
}


@pytest.fixture
def debug_logs() -> Any:
    # moto's server and its werkzeug request log are the fake Cognito's own records, not the
    # app's. Records from the test's main thread are the simulated SPA's own boto3 calls
    # (it holds the Session and tokens legitimately); the app runs in the live server's
    # threads, so everything it logs is kept.
    capture = LogCapture(
        excluded_prefixes=("moto", "werkzeug"), skip_thread=threading.main_thread().ident
    )
    with all_loggers_at_debug(capture):
        yield capture


@pytest.mark.parametrize("mode", list(MODES))
def test_first_sign_in_sets_up_totp_through_the_challenge_endpoints(
    mode: str,
    live_server: Any,
    moto_server: str,
    settings: Any,
    signal_log: SignalLog,
    debug_logs: LogCapture,
) -> None:
    options = MODES[mode]
    idp = moto_server_client(moto_server)
    pool = create_pool(idp, mfa="ON", with_secret=bool(options["with_secret"]))
    configure(settings, pool, endpoint_url=moto_server)
    if options["complete_auth"] is not None:
        settings.COGNITO_MFA_CHALLENGE_COMPLETE_AUTH = options["complete_auth"]
    pool.create_user("fiona", email="fiona@example.com", permanent=False)
    spa = Spa(pool)
    base = f"{live_server.url}/api/mfa/"

    # InitiateAuth -> NEW_PASSWORD_REQUIRED -> MFA_SETUP, all between the SPA and Cognito.
    session = spa.reach_mfa_setup("fiona")

    started = requests.post(
        base + "challenge/enrollments/",
        json={"username": "fiona", "session": session, "friendly_device_name": "Fiona's phone"},
        timeout=15,
    )
    assert started.status_code == 201, started.text
    assert started.headers["Cache-Control"] == "no-store"
    body = started.json()
    assert set(body) == {
        "id",
        "status",
        "secret_code",
        "otpauth_uri",
        "qr_code_svg",
        "qr_code_png",
        "expires_at",
        "friendly_device_name",
        "challenge_token",
    }
    assert body["status"] == "pending"
    assert f"secret={body['secret_code']}" in body["otpauth_uri"]
    secret, challenge_token = body["secret_code"], body["challenge_token"]
    assert len(challenge_token) >= 40

    enrollment = Enrollment.objects.get(pk=body["id"])
    assert enrollment.flow == "challenge"
    assert enrollment.user is None  # the challenge never creates a Django user
    # Stored encrypted, with the claimed name beside it: no column names the claim.
    claim = flows.open_challenge_claim(enrollment, crypto.decrypt(enrollment.encrypted_credential))
    assert (claim.session, claim.cognito_username) == (session, "fiona")
    assert enrollment.cognito_username == ""
    sentinels = {
        "MFA_SETUP Session": session,
        "TOTP secret": secret,
        "challenge token": challenge_token,
    }
    pending_dump, pending_raw = database_dump()
    assert_absent(sentinels, "the database dump while pending", pending_dump)
    assert_absent(sentinels, "raw column bytes while pending", pending_raw)

    wrong = requests.post(
        base + f"challenge/enrollments/{body['id']}/verify/",
        json={"challenge_token": challenge_token, "user_code": wrong_code(secret)},
        timeout=15,
    )
    assert wrong.status_code == 400, wrong.text
    assert wrong.json()["code"] == "invalid_code"
    assert wrong.json()["attempts_remaining"] == 4

    verified = requests.post(
        base + f"challenge/enrollments/{body['id']}/verify/",
        json={"challenge_token": challenge_token, "user_code": fresh_code(secret)},
        timeout=15,
    )
    assert verified.status_code == 200, verified.text
    assert verified.headers["Cache-Control"] == "no-store"
    result = verified.json()
    assert result["id"] == body["id"]
    assert result["status"] == "verified"

    if mode == "spa_responds":
        assert result["authentication_result"] is None
        assert result["session"]
        sentinels["verified Session"] = result["session"]
        tokens = spa.respond_mfa_setup("fiona", result["session"])
        # The app acted on no account by name (the username was only a claim): the SPA turns
        # TOTP on with its own new token.
        turned_on = requests.post(
            base + "preference/",
            json={"enabled": True, "preferred": True},
            headers={"Authorization": f"Bearer {tokens['AccessToken']}"},
            timeout=15,
        )
        assert turned_on.status_code == 200, turned_on.text
        assert turned_on.json()["software_token_mfa_enabled"] is True
    else:
        assert result["session"] is None
        tokens = result["authentication_result"]
        assert set(tokens) >= {"AccessToken", "IdToken", "RefreshToken", "ExpiresIn"}
    for name in ("AccessToken", "IdToken", "RefreshToken"):
        sentinels[name] = tokens[name]

    # The tokens work, and Cognito has TOTP on as the preferred MFA.
    me = idp.get_user(AccessToken=tokens["AccessToken"])
    assert me["Username"] == "fiona"
    assert me["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA"]
    assert me["PreferredMfaSetting"] == "SOFTWARE_TOKEN_MFA"
    admin_view = pool.mfa_state("fiona")
    assert admin_view["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA"]
    assert admin_view["UserStatus"] == "CONFIRMED"

    # The next sign-in asks for TOTP: a wrong code fails, a code from the same secret passes.
    challenged = spa.start_password_sign_in("fiona")
    assert challenged["ChallengeName"] == "SOFTWARE_TOKEN_MFA"
    assert "AuthenticationResult" not in challenged
    with pytest.raises(idp.exceptions.CodeMismatchException):
        spa.answer_totp("fiona", challenged["Session"], wrong_code(secret))
    again = spa.sign_in_with_totp("fiona", secret)
    assert idp.get_user(AccessToken=again["AccessToken"])["Username"] == "fiona"

    # The enrollment ended: verified once, credential wiped, token kept only as a hash.
    enrollment.refresh_from_db()
    assert enrollment.status == "verified"
    assert enrollment.encrypted_credential is None
    assert enrollment.friendly_device_name == "Fiona's phone"
    assert not enrollment.preference_pending
    # Tokens proved the name only where the app completed the sign-in itself.
    assert enrollment.cognito_username == ("" if mode == "spa_responds" else "fiona")

    kinds = list(
        AuditEvent.objects.filter(enrollment=enrollment)
        .order_by("id")
        .values_list("kind", "source")
    )
    expected_kinds = [
        ("started", "challenge"),
        ("verification_failed", "challenge"),
        ("verified", "challenge"),
    ]
    if mode != "spa_responds":
        expected_kinds.append(("challenge_completed", "challenge"))
    assert kinds == expected_kinds

    verified_signals = signal_log.named("software_token_verified")
    assert len(verified_signals) == 1
    assert verified_signals[0]["source"] == "challenge"
    assert verified_signals[0]["user"] is None
    assert verified_signals[0]["actor"] is None
    assert [kw["source"] for kw in signal_log.named("enrollment_started")] == ["challenge"]
    assert [kw["code"] for kw in signal_log.named("verification_failed")] == ["invalid_code"]

    # Sentinels: nowhere in the database, the logs, the signal kwargs or the audit rows.
    dump, raw = database_dump()
    assert_absent(sentinels, "the database dump", dump)
    assert_absent(sentinels, "raw column bytes", raw)
    audit_text = repr(list(AuditEvent.objects.values()))
    assert_absent(sentinels, "audit rows", audit_text)
    assert_absent(sentinels, "signal kwargs", signal_kwargs_text(signal_log.events))
    logs = debug_logs.text()
    # The capture really saw the app's Cognito traffic at DEBUG (so its silence means something).
    assert "VerifySoftwareToken" in logs
    assert "AssociateSoftwareToken" in logs
    assert_absent(sentinels, "log records", logs)
