"""The sign-in ``MFA_SETUP`` challenge: the SPA's side of the sign-in and of the app's two
challenge endpoints, and a Stubber-backed app client."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.stub import Stubber

from cognito_mfa import cognito
from cognito_mfa.cognito import CognitoClient, parse_mfas_can_setup
from tests.support.cognito import PASSWORD, Pool, fresh_code

NEW_PASSWORD = "Brand-New-Passw0rd-42"


def configure(settings: Any, pool: Pool, endpoint_url: str | None = None) -> None:
    """Point the app at ``pool`` (and at moto's HTTP server when ``endpoint_url`` is set)."""
    settings.COGNITO_MFA_REGION = "us-east-1"
    settings.COGNITO_MFA_USER_POOL_ID = pool.pool_id
    settings.COGNITO_MFA_APP_CLIENT_IDS = [pool.client_id]
    settings.COGNITO_MFA_APP_CLIENT_SECRET = pool.client_secret
    if endpoint_url is not None:
        settings.COGNITO_MFA_ENDPOINT_URL = endpoint_url
        settings.COGNITO_MFA_JWKS_URL = f"{endpoint_url}/{pool.pool_id}/.well-known/jwks.json"


START_URL = "/api/mfa/challenge/enrollments/"


def verify_url(enrollment_id: Any) -> str:
    return f"{START_URL}{enrollment_id}/verify/"


def start(api: Any, username: str, session: str, **extra: Any) -> Any:
    """``POST challenge/enrollments/`` as the SPA sends it."""
    return api.post(START_URL, {"username": username, "session": session, **extra}, format="json")


def verify(api: Any, started: dict[str, Any], code: str) -> Any:
    """``POST challenge/enrollments/{id}/verify/`` with the start's challenge token."""
    body = {"challenge_token": started["challenge_token"], "user_code": code}
    return api.post(verify_url(started["id"]), body, format="json")


def mfa_setup_session(pool: Pool, username: str) -> str:
    """Create a user with a temporary password and sign in as the SPA does, up to the
    ``MFA_SETUP`` challenge; return its Session."""
    pool.create_user(username, email=f"{username}@example.com", permanent=False)
    return Spa(pool).reach_mfa_setup(username)


def expected_secret_hash(username: str, client_id: str, client_secret: str) -> str:
    """SECRET_HASH as the Cognito docs define it, computed here independently of the app."""
    mac = hmac.new(client_secret.encode(), (username + client_id).encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


@dataclass
class Spa:
    """What a single-page app does with Cognito itself, around the app's two endpoints."""

    pool: Pool
    password: str = NEW_PASSWORD

    def _with_hash(self, username: str, values: dict[str, str]) -> dict[str, str]:
        # A confidential client: every call that names the user carries SECRET_HASH.
        if self.pool.client_secret:
            values["SECRET_HASH"] = expected_secret_hash(
                username, self.pool.client_id, self.pool.client_secret
            )
        return values

    def reach_mfa_setup(self, username: str) -> str:
        """Sign in with the temporary password, answer NEW_PASSWORD_REQUIRED; return the
        MFA_SETUP Session."""
        client = self.pool.client
        first = client.initiate_auth(
            ClientId=self.pool.client_id,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters=self._with_hash(
                username, {"USERNAME": username, "PASSWORD": PASSWORD + "tmp"}
            ),
        )
        assert first["ChallengeName"] == "NEW_PASSWORD_REQUIRED"
        second = client.respond_to_auth_challenge(
            ClientId=self.pool.client_id,
            ChallengeName="NEW_PASSWORD_REQUIRED",
            Session=first["Session"],
            ChallengeResponses=self._with_hash(
                username, {"USERNAME": username, "NEW_PASSWORD": self.password}
            ),
        )
        assert second["ChallengeName"] == "MFA_SETUP"
        # moto sends a Python repr ("['SOFTWARE_TOKEN_MFA']"), AWS a JSON list.
        can_setup = parse_mfas_can_setup(second["ChallengeParameters"]["MFAS_CAN_SETUP"])
        assert "SOFTWARE_TOKEN_MFA" in can_setup
        return str(second["Session"])

    def respond_mfa_setup(self, username: str, session: str) -> dict[str, Any]:
        """Answer MFA_SETUP with the Session the app returned; return the tokens."""
        response = self.pool.client.respond_to_auth_challenge(
            ClientId=self.pool.client_id,
            ChallengeName="MFA_SETUP",
            Session=session,
            ChallengeResponses=self._with_hash(username, {"USERNAME": username}),
        )
        return dict(response["AuthenticationResult"])

    def start_password_sign_in(self, username: str) -> dict[str, Any]:
        """InitiateAuth with the permanent password; return Cognito's whole answer."""
        return dict(
            self.pool.client.initiate_auth(
                ClientId=self.pool.client_id,
                AuthFlow="USER_PASSWORD_AUTH",
                AuthParameters=self._with_hash(
                    username, {"USERNAME": username, "PASSWORD": self.password}
                ),
            )
        )

    def answer_totp(self, username: str, session: str, code: str) -> dict[str, Any]:
        response = self.pool.client.respond_to_auth_challenge(
            ClientId=self.pool.client_id,
            ChallengeName="SOFTWARE_TOKEN_MFA",
            Session=session,
            ChallengeResponses=self._with_hash(
                username, {"USERNAME": username, "SOFTWARE_TOKEN_MFA_CODE": code}
            ),
        )
        return dict(response["AuthenticationResult"])

    def sign_in_with_totp(self, username: str, secret: str) -> dict[str, Any]:
        first = self.start_password_sign_in(username)
        assert first.get("ChallengeName") == "SOFTWARE_TOKEN_MFA", first
        return self.answer_totp(username, first["Session"], fresh_code(secret))


# --- a Stubber behind the app's Cognito boundary -----------------------------------------------


@contextmanager
def stubbed_app_client(monkeypatch: Any) -> Iterator[Stubber]:
    """Install a Stubber-backed client as the app's process-wide Cognito client."""
    raw = boto3.client("cognito-idp", region_name="us-east-1")
    stubber = Stubber(raw)
    monkeypatch.setattr(cognito.client, "_client", CognitoClient(raw))
    with stubber:
        yield stubber
