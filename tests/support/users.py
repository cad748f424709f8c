"""Helpers shared by the hardening tests: Cognito call counters, a user with a TOTP already."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cognito_mfa.cognito import get_client
from tests.conftest import fresh_code
from tests.support.cognito import Pool


@contextmanager
def count_cognito_calls() -> Iterator[Counter[str]]:
    """Count the app's Cognito calls by operation name (a botocore ``before-call`` hook).

    The hook sits on the app's own client, so calls the tests make to moto directly are not
    counted, and every attempt of a retried call is (``before-call`` fires once per call,
    ``before-send`` once per attempt).
    """
    calls: Counter[str] = Counter()
    client = get_client().client
    service = client.meta.service_model.service_id.hyphenize()
    event = f"before-call.{service}"

    def hook(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    client.meta.events.register(event, hook, unique_id="hardening-call-counter")
    try:
        yield calls
    finally:
        client.meta.events.unregister(event, unique_id="hardening-call-counter")


def give_existing_totp(pool: Pool, username: str) -> None:
    """Register and turn on a software token for ``username`` directly in moto."""
    token = pool.access_token(username)
    pool.client.associate_software_token(AccessToken=token)
    pool.client.verify_software_token(AccessToken=token, UserCode=fresh_code())
    pool.client.set_user_mfa_preference(
        AccessToken=token,
        SoftwareTokenMfaSettings={"Enabled": True, "PreferredMfa": True},
    )


def totp_enabled(pool: Pool, username: str) -> bool:
    """Tell whether Cognito (moto) lists SOFTWARE_TOKEN_MFA for ``username``."""
    state = pool.mfa_state(username)
    return "SOFTWARE_TOKEN_MFA" in (state.get("UserMFASettingList") or [])


def sign_in(pool: Pool, username: str) -> str:
    """Return a new access token, answering the SOFTWARE_TOKEN_MFA challenge when asked."""
    from tests.support.cognito import PASSWORD

    step = pool.client.initiate_auth(
        ClientId=pool.client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": username, "PASSWORD": PASSWORD},
    )
    if step.get("ChallengeName") == "SOFTWARE_TOKEN_MFA":
        step = pool.client.respond_to_auth_challenge(
            ClientId=pool.client_id,
            ChallengeName="SOFTWARE_TOKEN_MFA",
            Session=step["Session"],
            ChallengeResponses={"USERNAME": username, "SOFTWARE_TOKEN_MFA_CODE": fresh_code()},
        )
    return str(step["AuthenticationResult"]["AccessToken"])
