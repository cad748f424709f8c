"""Cognito users in a state of their own: a TOTP already on, a sign-in answering its MFA."""

from __future__ import annotations

from tests.support.cognito import PASSWORD, Pool, fresh_code


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
