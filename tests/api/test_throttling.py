"""DRF throttles on start, verify and the challenge endpoints: one count shared by every
server process (Django's Redis cache), and the client address decided by ``NUM_PROXIES``."""

from __future__ import annotations

import json
import os
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from django.core.cache import caches
from django.test import RequestFactory
from rest_framework.test import APIClient

from cognito_mfa.adapter import DefaultAdapter
from tests.support.cognito import Pool, create_pool, moto_server_client
from tests.support.servers import Gunicorn, migrate, server_environment, temporary_database
from tests.support.services import require_service

CHALLENGE = "/api/mfa/challenge/enrollments/"
# A well-formed challenge verify of no enrollment: counted by the throttle, answered 404 without
# a call to Cognito (a malformed body is answered 400 before the throttles and not counted).
CHALLENGE_VERIFY = f"{CHALLENGE}{uuid.UUID(int=0)}/verify/"
WRONG_TOKEN = {"challenge_token": "wrong", "user_code": "123456"}
RATES = {"start": "2/min", "verify": "3/min", "challenge": "3/min"}


# --- NUM_PROXIES: which address the challenge throttle counts -----------------------------------


@pytest.fixture
def challenge_limit(settings: Any) -> Iterator[None]:
    settings.COGNITO_MFA_THROTTLE_RATES = {"start": None, "verify": None, "challenge": "2/min"}
    caches["default"].clear()
    yield
    caches["default"].clear()


def _challenge(api: APIClient, forwarded_for: str | None = None) -> int:
    extra = {"REMOTE_ADDR": "127.0.0.9"}  # the address the connection came from
    if forwarded_for is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded_for
    response = api.post(CHALLENGE_VERIFY, WRONG_TOKEN, format="json", **extra)
    if response.status_code == 429:
        assert response.json()["code"] == "throttled"
        assert int(response["Retry-After"]) >= 1
    return response.status_code


@pytest.mark.django_db
@pytest.mark.usefixtures("challenge_limit")
def test_ipv6_clients_are_counted_by_their_64_network(api: APIClient) -> None:
    """One host holds a whole /64: new addresses inside it share one bucket."""

    def from_address(address: str) -> int:
        return api.post(
            CHALLENGE_VERIFY, WRONG_TOKEN, format="json", REMOTE_ADDR=address
        ).status_code

    assert from_address("2001:db8:1:2::1") == 404
    assert from_address("2001:db8:1:2::2") == 404
    assert from_address("2001:db8:1:2:ffff:ffff:ffff:ffff") == 429
    assert from_address("2001:db8:1:3::1") == 404  # another /64
    assert from_address("192.0.2.1") == 404  # IPv4 as is
    assert from_address("192.0.2.2") == 404


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("scope", "method", "path", "body"),
    [
        ("preference", "post", "/api/mfa/preference/", {"enabled": False, "preferred": False}),
        ("status", "get", "/api/mfa/status/", None),
    ],
)
def test_preference_and_status_are_throttled_per_user(
    settings: Any, pool: Pool, scope: str, method: str, path: str, body: Any
) -> None:
    settings.COGNITO_MFA_THROTTLE_RATES = {scope: "2/min"}
    caches["default"].clear()
    pool.create_user("tina")
    pool.create_user("uma")
    answers = []
    for username in ("tina", "tina", "tina", "uma"):
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {pool.access_token(username)}")
        response = getattr(api, method)(path, body, format="json")
        answers.append(response.status_code)
    caches["default"].clear()
    assert answers[:2] == [200, 200]
    assert answers[2] == 429
    assert answers[3] == 200  # another user's own bucket


@pytest.mark.django_db
@pytest.mark.usefixtures("challenge_limit")
def test_without_num_proxies_a_spoofed_forwarded_for_is_ignored(api: APIClient) -> None:
    # A new X-Forwarded-For on every request would be a new bucket if it were trusted.
    assert _challenge(api, "198.51.100.1") == 404
    assert _challenge(api, "198.51.100.2") == 404
    assert _challenge(api, "198.51.100.3") == 429
    assert _challenge(api) == 429


@pytest.mark.django_db
@pytest.mark.usefixtures("challenge_limit")
def test_with_one_proxy_the_forwarded_client_is_counted(settings: Any, api: APIClient) -> None:
    settings.REST_FRAMEWORK = {"NUM_PROXIES": 1}

    assert _challenge(api, "198.51.100.1") == 404
    assert _challenge(api, "198.51.100.1") == 404
    assert _challenge(api, "198.51.100.2") == 404  # another client behind the same proxy
    assert _challenge(api, "198.51.100.1") == 429
    # What the client wrote before the proxy's entry does not make it someone else.
    assert _challenge(api, "203.0.113.7, 198.51.100.1") == 429
    assert _challenge(api, "198.51.100.2") == 404


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("scope", "path", "valid"),
    [
        ("start", "/api/mfa/enrollments/", {}),
        ("verify", f"/api/mfa/enrollments/{uuid.UUID(int=0)}/verify/", {"user_code": "123456"}),
        ("preference", "/api/mfa/preference/", {"enabled": False, "preferred": False}),
    ],
)
def test_bad_input_spends_none_of_the_users_allowance(
    settings: Any, pool: Pool, scope: str, path: str, valid: dict[str, Any]
) -> None:
    """A buggy client's malformed requests are answered (400, 415) and leave the user's
    allowance as it was: the user's own well-formed requests still get through."""
    settings.COGNITO_MFA_THROTTLE_RATES = {scope: "2/min"}
    caches["default"].clear()
    pool.create_user("vera")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {pool.access_token('vera')}")
    try:
        for _ in range(5):
            malformed = api.post(
                path, {"friendly_device_name": 7, "user_code": "12", "enabled": "x"}, format="json"
            )
            assert (malformed.status_code, malformed.json()["code"]) == (400, "invalid")
            not_json = api.post(path, "user_code=123456", content_type="text/plain")
            assert (not_json.status_code, not_json.json()["code"]) == (
                415,
                "unsupported_media_type",
            )
        answers = [api.post(path, valid, format="json").status_code for _ in range(3)]
    finally:
        caches["default"].clear()
    assert 429 not in answers[:2], answers
    assert answers[2] == 429


@pytest.mark.parametrize(
    ("num_proxies", "forwarded_for", "expected"),
    [
        (None, "198.51.100.1", "127.0.0.9"),
        (0, "198.51.100.1", "127.0.0.9"),
        (1, "203.0.113.7, 198.51.100.1", "198.51.100.1"),
        (2, "203.0.113.7, 198.51.100.1", "203.0.113.7"),
        (2, "not-an-address", "127.0.0.9"),  # too short a header: the client's own text
        (1, None, "127.0.0.9"),
    ],
)
def test_audit_address_follows_num_proxies(
    settings: Any, num_proxies: int | None, forwarded_for: str | None, expected: str
) -> None:
    settings.REST_FRAMEWORK = {"NUM_PROXIES": num_proxies}
    extra = {"REMOTE_ADDR": "127.0.0.9"}
    if forwarded_for is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded_for
    request = RequestFactory().get("/", **extra)

    assert DefaultAdapter().get_client_ip(request) == expected


# --- one count across two server processes -----------------------------------------------------


@dataclass
class TwoServers:
    urls: tuple[str, str]
    pool: Pool
    redis: Any
    prefix: str

    def url(self, turn: int, path: str) -> str:
        return f"{self.urls[turn % 2]}/api/mfa/{path}"


@pytest.fixture(scope="module")
def two_servers(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoServers]:
    postgres_url = os.environ.get("COGNITO_MFA_TEST_POSTGRES_URL", "")
    redis_url = os.environ.get("COGNITO_MFA_TEST_REDIS_URL", "")
    require_service("PostgreSQL", bool(postgres_url), "set COGNITO_MFA_TEST_POSTGRES_URL")
    require_service("Redis", bool(redis_url), "set COGNITO_MFA_TEST_REDIS_URL")
    import redis

    store = redis.Redis.from_url(redis_url)
    try:
        store.ping()
    except redis.RedisError as error:
        require_service("Redis", False, f"{redis_url}: {error}")
    client = moto_server_client(moto_server)
    pool = create_pool(client)
    prefix = f"cmfa-throttle-{secrets.token_hex(4)}"
    workdir = tmp_path_factory.mktemp("throttles")
    servers: list[Gunicorn] = []
    with temporary_database(postgres_url) as database_url:
        env = server_environment(
            CMFA_SERVER_DATABASE_URL=database_url,
            CMFA_SERVER_ENDPOINT_URL=moto_server,
            CMFA_SERVER_JWKS_URL=f"{moto_server}/{pool.pool_id}/.well-known/jwks.json",
            CMFA_SERVER_POOL_ID=pool.pool_id,
            CMFA_SERVER_CLIENT_ID=pool.client_id,
            CMFA_SERVER_REDIS_URL=redis_url,
            CMFA_SERVER_REDIS_PREFIX=prefix,
            CMFA_SERVER_THROTTLE_RATES=json.dumps(RATES),
        )
        migrate(env)
        try:
            for name in ("a", "b"):
                servers.append(
                    Gunicorn(env, workers=1, log_path=workdir / f"gunicorn-{name}.log").start()
                )
            yield TwoServers((servers[0].url, servers[1].url), pool, store, prefix)
        finally:
            for server in servers:
                server.stop()
            for key in store.scan_iter(match=f"{prefix}:*"):
                store.delete(key)


def _bearer(servers: TwoServers) -> dict[str, str]:
    username = f"thr-{secrets.token_hex(4)}"
    servers.pool.create_user(username)
    return {"Authorization": f"Bearer {servers.pool.access_token(username)}"}


def _assert_throttled(response: requests.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["code"] == "throttled"
    assert 1 <= int(response.headers["Retry-After"]) <= 61


@pytest.mark.multiprocess
@pytest.mark.postgres
@pytest.mark.redis
def test_verify_limit_is_shared_by_both_processes(two_servers: TwoServers) -> None:
    headers = _bearer(two_servers)
    path = f"enrollments/{uuid.uuid4()}/verify/"

    def send(turn: int) -> requests.Response:
        return requests.post(
            two_servers.url(turn, path), json={"user_code": "123456"}, headers=headers, timeout=30
        )

    # Alternating a, b, a: each process saw at most two, yet the third spent the limit.
    assert [send(turn).status_code for turn in range(3)] == [404, 404, 404]
    _assert_throttled(send(3))  # b
    _assert_throttled(send(4))  # a
    keys = [key.decode() for key in two_servers.redis.scan_iter(match=f"{two_servers.prefix}:*")]
    assert any("cognito_mfa:throttle:verify:user:" in key for key in keys), keys


@pytest.mark.multiprocess
@pytest.mark.postgres
@pytest.mark.redis
def test_start_limit_is_shared_by_both_processes(two_servers: TwoServers) -> None:
    headers = _bearer(two_servers)

    def send(turn: int) -> requests.Response:
        return requests.post(
            two_servers.url(turn, "enrollments/"), json={}, headers=headers, timeout=30
        )

    assert [send(turn).status_code for turn in range(2)] == [201, 201]
    _assert_throttled(send(2))
    _assert_throttled(send(3))


@pytest.mark.multiprocess
@pytest.mark.postgres
@pytest.mark.redis
def test_challenge_limit_is_shared_by_both_processes_and_endpoints(
    two_servers: TwoServers,
) -> None:
    verify = f"challenge/enrollments/{uuid.uuid4()}/verify/"

    def send(turn: int) -> requests.Response:
        # a: start a challenge enrollment with a Session Cognito refuses; b: verify one that
        # does not exist (both well-formed, both counted).
        if turn % 2 == 0:
            body = {"username": "nobody", "session": "s" * 40}
            return requests.post(
                two_servers.url(turn, "challenge/enrollments/"), json=body, timeout=30
            )
        return requests.post(two_servers.url(turn, verify), json=WRONG_TOKEN, timeout=30)

    # A malformed body on either endpoint is answered and counts for nothing.
    assert requests.post(two_servers.url(0, verify), json={}, timeout=30).status_code == 400
    assert [send(turn).status_code for turn in range(3)] == [401, 404, 401]
    _assert_throttled(send(3))
    _assert_throttled(send(4))
