"""Cognito for the tests: a moto user pool, the test adapter, TOTP codes, and the one counter of
the Cognito calls the app makes."""

from __future__ import annotations

import base64
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from moto.utilities.utils import load_resource

from cognito_mfa.adapter import DefaultAdapter
from cognito_mfa.cognito import get_client
from cognito_mfa.tokens import fetch_jwks_over_http

MOTO_SECRET = "asdfasdfasdf"  # moto gives every user this TOTP secret
PASSWORD = "Correct-Horse-9-battery"


class TestAdapter(DefaultAdapter):
    """The suite's adapter (``COGNITO_MFA_ADAPTER``): the default policy, for tests to patch
    and subclass."""


class TestJWKS:
    """The suite's signing keys, served by ``fetch_test_jwks`` (the suite's
    ``COGNITO_MFA_JWKS_FETCHER``).

    ``override``, when set, is served whatever the URL; else moto's bundled keys for
    in-process tests (mock_aws does not intercept urllib), and real HTTP when the JWKS URL
    points at a local server.
    """

    override: dict[str, Any] | None = None


def fetch_test_jwks(url: str) -> dict[str, Any]:
    if TestJWKS.override is not None:
        return TestJWKS.override
    if url.startswith("http://127.0.0.1") or url.startswith("http://localhost"):
        return fetch_jwks_over_http(url)
    return load_resource("cognitoidp/resources/jwks-public.json")


def totp_code(secret: str = MOTO_SECRET, at: float | None = None) -> str:
    """The 6-digit code an authenticator shows for ``secret`` (base32, any length)."""
    padded = secret.upper() + "=" * (-len(secret) % 8)
    totp = TOTP(base64.b32decode(padded), 6, SHA1(), 30, enforce_key_length=False)
    return totp.generate(int(at if at is not None else time.time())).decode()


def fresh_code(secret: str = MOTO_SECRET) -> str:
    """A code with at least 2 s left in its 30-s step (moto accepts only the current step)."""
    if time.time() % 30 > 28:
        time.sleep(30 - time.time() % 30 + 0.05)
    return totp_code(secret)


def wrong_code(secret: str = MOTO_SECRET) -> str:
    right = totp_code(secret)
    return f"{(int(right) + 500_000) % 1_000_000:06d}"


@dataclass
class Pool:
    client: Any  # a boto3 cognito-idp client talking to moto
    pool_id: str
    client_id: str
    client_secret: str | None = None

    def create_user(
        self, username: str, *, email: str | None = None, permanent: bool = True
    ) -> None:
        attributes = [{"Name": "email", "Value": email}] if email else []
        self.client.admin_create_user(
            UserPoolId=self.pool_id,
            Username=username,
            TemporaryPassword=PASSWORD + "tmp",
            UserAttributes=attributes,
            MessageAction="SUPPRESS",
        )
        if permanent:
            self.client.admin_set_user_password(
                UserPoolId=self.pool_id, Username=username, Password=PASSWORD, Permanent=True
            )

    def sign_in(self, username: str) -> dict[str, Any]:
        """Return the AuthenticationResult of a password sign-in."""
        response = self.client.initiate_auth(
            ClientId=self.client_id,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": username, "PASSWORD": PASSWORD},
        )
        return response["AuthenticationResult"]

    def access_token(self, username: str) -> str:
        return self.sign_in(username)["AccessToken"]

    def mfa_state(self, username: str) -> dict[str, Any]:
        return self.client.admin_get_user(UserPoolId=self.pool_id, Username=username)


def moto_server_client(url: str) -> Any:
    """A Cognito client of the moto HTTP server at ``url`` (test keys given here, so that it
    also works in module-scoped fixtures, before the per-test AWS environment is set)."""
    import boto3

    return boto3.client(
        "cognito-idp",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def create_pool(client: Any, *, mfa: str = "OPTIONAL", with_secret: bool = False) -> Pool:
    pool_id = client.create_user_pool(PoolName="tests")["UserPool"]["Id"]
    client.set_user_pool_mfa_config(
        UserPoolId=pool_id,
        SoftwareTokenMfaConfiguration={"Enabled": True},
        MfaConfiguration=mfa,
    )
    app = client.create_user_pool_client(
        UserPoolId=pool_id,
        ClientName="spa",
        GenerateSecret=with_secret,
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]
    return Pool(client, pool_id, app["ClientId"], app.get("ClientSecret"))


@dataclass
class CognitoCalls:
    """The operations the app's Cognito client was asked for (``calls``, once per call) and
    sent (``sends``, once per HTTP attempt, so a retried call shows in ``sends`` again)."""

    calls: list[str] = field(default_factory=list)
    sends: list[str] = field(default_factory=list)

    @property
    def counts(self) -> Counter[str]:
        """The calls by operation name."""
        return Counter(self.calls)

    def _on_call(self, model: Any = None, **_: Any) -> None:
        self.calls.append(model.name if model is not None else "?")

    def _on_send(self, request: Any = None, **_: Any) -> None:
        target = (request.headers.get("X-Amz-Target") or b"") if request is not None else b""
        if isinstance(target, bytes):
            target = target.decode()
        self.sends.append(target.rsplit(".", 1)[-1])


@contextmanager
def count_cognito_calls() -> Iterator[CognitoCalls]:
    """Record every call (``before-call``) and HTTP send (``before-send``) of the app's client.

    The hooks sit on the app's own client, so calls the tests make to moto directly are not
    counted.
    """
    recorded = CognitoCalls()
    client = get_client().client
    service = client.meta.service_model.service_id.hyphenize()
    events = client.meta.events
    events.register(f"before-call.{service}", recorded._on_call, unique_id="tests-count-call")
    events.register_first(f"before-send.{service}", recorded._on_send, unique_id="tests-count-send")
    try:
        yield recorded
    finally:
        events.unregister(f"before-call.{service}", unique_id="tests-count-call")
        events.unregister(f"before-send.{service}", unique_id="tests-count-send")
