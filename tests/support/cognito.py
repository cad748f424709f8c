"""Test helpers: the adapter, TOTP codes, a moto user pool."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from django.db import connections
from django.dispatch import Signal

from cognito_mfa import signals
from cognito_mfa.adapter import DefaultAdapter

MOTO_SECRET = "asdfasdfasdf"  # moto gives every user this TOTP secret
PASSWORD = "Correct-Horse-9-battery"


# Every signal the app sends, by name: the receivers that record them all (the in-process
# signal log, the test servers' file) connect to each.
SIGNAL_NAMES = tuple(name for name, value in vars(signals).items() if isinstance(value, Signal))


class TestAdapter(DefaultAdapter):
    """Serve moto's bundled signing keys to in-process tests (mock_aws does not intercept
    urllib); real HTTP when the JWKS URL points at a server."""

    jwks_override: dict[str, Any] | None = None

    def fetch_jwks(self, url: str) -> dict[str, Any]:
        if TestAdapter.jwks_override is not None:
            return TestAdapter.jwks_override
        if url.startswith("http://127.0.0.1") or url.startswith("http://localhost"):
            return super().fetch_jwks(url)
        from moto.utilities.utils import load_resource

        return load_resource("cognitoidp/resources/jwks-public.json")


def totp_code(secret: str = MOTO_SECRET, at: float | None = None) -> str:
    """The 6-digit code an authenticator shows for ``secret`` (base32, any length)."""
    padded = secret.upper() + "=" * (-len(secret) % 8)
    totp = TOTP(base64.b32decode(padded), 6, SHA1(), 30, enforce_key_length=False)
    return totp.generate(int(at if at is not None else time.time())).decode()


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


Result = TypeVar("Result")


def run_as_hosts(count: int, work: Callable[[], Result]) -> list[Result]:
    """Run ``work`` in ``count`` threads released at once, as cron would on ``count`` hosts.

    Each thread has its own database connection (closed when it is done); an exception in
    any thread is raised here.
    """
    barrier = threading.Barrier(count)

    def host(_: int) -> Result:
        try:
            barrier.wait(timeout=30)
            return work()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(host, range(count), timeout=120))
