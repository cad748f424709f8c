from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.loaders
import botocore.session
import pytest
from moto import mock_aws
from moto.server import ThreadedMotoServer
from rest_framework.test import APIClient

from cognito_mfa import signals
from cognito_mfa.budget import reset_budget
from cognito_mfa.cognito import reset_client
from cognito_mfa.tokens import jwks_cache, validated_tokens
from tests.support.cognito import Pool, TestJWKS, create_pool, moto_server_client
from tests.support.signals import SIGNAL_NAMES, SignalLog


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave ``postgres_only`` tests out of the SQLite pass: they run in the PostgreSQL pass
    (``make test`` runs both), so SQLite neither skips nor fakes them."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return
    kept = [item for item in items if item.get_closest_marker("postgres_only") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


@pytest.fixture(autouse=True, scope="session")
def _service_models_parsed_once() -> Iterator[None]:
    """One botocore loader for every session the suite makes.

    Each new boto3 session parses botocore's JSON service models again (about 0.2 s): moto
    hands out a new default session inside every mock, and the app builds its client anew
    after each settings change. Before this, that parsing was half of the suite's time. The
    loader only reads files and caches what it read, so sharing it changes no behaviour.
    """
    with pytest.MonkeyPatch.context() as patch:
        shared = functools.cache(botocore.loaders.create_loader)
        patch.setattr(botocore.session, "create_loader", shared)
        yield


@pytest.fixture(autouse=True)
def _aws_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP", "true")
    reset_client()
    reset_budget()
    jwks_cache.clear()
    validated_tokens.clear()
    TestJWKS.override = None
    yield
    reset_client()
    reset_budget()
    jwks_cache.clear()
    validated_tokens.clear()
    TestJWKS.override = None


@pytest.fixture
def moto_client() -> Iterator[Any]:
    """A cognito-idp client inside moto's in-process mock."""
    with mock_aws():
        yield boto3.client("cognito-idp", region_name="us-east-1")


def _configure(settings: Any, pool: Pool) -> None:
    settings.COGNITO_MFA_REGION = "us-east-1"
    settings.COGNITO_MFA_USER_POOL_ID = pool.pool_id
    settings.COGNITO_MFA_APP_CLIENT_IDS = [pool.client_id]
    settings.COGNITO_MFA_APP_CLIENT_SECRET = pool.client_secret


@pytest.fixture
def pool(moto_client: Any, settings: Any) -> Pool:
    """A user pool with TOTP enabled (MFA optional) and the app configured for it."""
    created = create_pool(moto_client)
    _configure(settings, created)
    return created


@pytest.fixture
def mfa_pool(moto_client: Any, settings: Any) -> Pool:
    """A user pool that requires MFA (a new user's first sign-in meets MFA_SETUP), the app
    configured for it."""
    created = create_pool(moto_client, mfa="ON")
    _configure(settings, created)
    return created


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto as a real HTTP server on loopback; yields its base URL."""
    os.environ["MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP"] = "true"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def server_pool(moto_server: str, settings: Any) -> Pool:
    """A pool on the moto HTTP server, the app pointed at it (endpoint and JWKS over HTTP)."""
    client = moto_server_client(moto_server)
    created = create_pool(client)
    _configure(settings, created)
    settings.COGNITO_MFA_ENDPOINT_URL = moto_server
    settings.COGNITO_MFA_JWKS_URL = f"{moto_server}/{created.pool_id}/.well-known/jwks.json"
    return created


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def alice(pool: Pool) -> str:
    pool.create_user("alice", email="alice@example.com")
    return pool.access_token("alice")


@pytest.fixture
def alice_api(api: APIClient, alice: str) -> APIClient:
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {alice}")
    return api


@pytest.fixture
def signal_log() -> Iterator[SignalLog]:
    log = SignalLog()
    receivers = []
    for name in SIGNAL_NAMES:

        def receiver(sender: Any, _name: str = name, **kwargs: Any) -> None:
            kwargs.pop("signal", None)
            log.events.append((_name, {"sender": sender, **kwargs}))

        getattr(signals, name).connect(receiver, weak=False)
        receivers.append((name, receiver))
    yield log
    for name, receiver in receivers:
        getattr(signals, name).disconnect(receiver)
