"""The pool's signing keys: fetched once per process, refetched sparingly, reset on a new URL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

import pytest
from rest_framework.test import APIClient

from cognito_mfa import exceptions as exc
from cognito_mfa import tokens
from tests.support.cognito import Pool, TestJWKS, fetch_test_jwks
from tests.support.tokens import SigningKey, access_claims, cached_key, moto_public_jwks

BASE = "/api/mfa/"


class FakeClock:
    """Stands in for the ``time`` module inside :mod:`cognito_mfa.tokens`."""

    def __init__(self) -> None:
        self.now = 100_000.0

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class JWKSFetches:
    current: ClassVar[JWKSFetches | None] = None  # the ``fetches`` fixture's record

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.fail = False

    def __len__(self) -> int:
        return len(self.urls)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(tokens, "time", fake)
    return fake


@pytest.fixture
def fetches(monkeypatch: pytest.MonkeyPatch, settings: Any) -> JWKSFetches:
    """Count every JWKS fetch the boundary makes (and let a test make them fail)."""
    record = JWKSFetches()
    monkeypatch.setattr(JWKSFetches, "current", record)
    settings.COGNITO_MFA_JWKS_FETCHER = f"{__name__}.counting_jwks_fetcher"
    return record


def counting_jwks_fetcher(url: str) -> dict[str, Any]:
    """The ``fetches`` fixture's ``COGNITO_MFA_JWKS_FETCHER``: record, then fetch as the suite
    does."""
    record = JWKSFetches.current
    assert record is not None
    record.urls.append(url)
    if record.fail:
        raise OSError("JWKS endpoint down")
    return fetch_test_jwks(url)


@pytest.fixture
def new_key() -> SigningKey:
    return cached_key("rotated", "rotated-key")


def _token(pool: Pool, key: SigningKey, username: str = "alice") -> str:
    claims = access_claims(
        region="us-east-1", pool_id=pool.pool_id, client_id=pool.client_id, username=username
    )
    return key.sign(claims)


def _get(token: str) -> Any:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api.get(BASE + "enrollments/")


@pytest.mark.django_db
def test_keys_come_from_the_configured_fetcher_and_a_new_fetcher_drops_them(
    alice: str, fetches: JWKSFetches, settings: Any
) -> None:
    assert _get(alice).status_code == 200
    assert len(fetches) == 1  # the fixture's COGNITO_MFA_JWKS_FETCHER, not the default one
    settings.COGNITO_MFA_JWKS_FETCHER = "tests.support.fetch_test_jwks"
    settings.COGNITO_MFA_JWKS_FETCHER = f"{__name__}.counting_jwks_fetcher"
    assert _get(alice).status_code == 200
    assert len(fetches) == 2  # the keys of the old fetcher were dropped on the change


@pytest.mark.django_db
def test_a_fetcher_that_fails_is_an_unavailable_pool(alice: str, fetches: JWKSFetches) -> None:
    fetches.fail = True
    response = _get(alice)
    assert response.status_code == 503
    assert response.json()["code"] == "cognito_unavailable"


@pytest.mark.django_db
def test_keys_are_fetched_once_for_many_requests(
    alice: str, fetches: JWKSFetches, clock: FakeClock
) -> None:
    for _ in range(10):
        assert _get(alice).status_code == 200
        clock.advance(60)
    assert len(fetches) == 1
    assert fetches.urls == [
        f"https://cognito-idp.us-east-1.amazonaws.com/{tokens.app_settings.USER_POOL_ID}"
        "/.well-known/jwks.json"
    ]


@pytest.mark.django_db
def test_unknown_kid_refetches_at_most_once_per_interval(
    pool: Pool,
    alice: str,
    fetches: JWKSFetches,
    clock: FakeClock,
    new_key: SigningKey,
    settings: Any,
) -> None:
    settings.COGNITO_MFA_JWKS_MIN_REFETCH_INTERVAL = timedelta(seconds=30)
    assert _get(alice).status_code == 200
    assert len(fetches) == 1

    # The pool rotates its keys: the new key is in the JWKS from now on.
    TestJWKS.override = {"keys": [*moto_public_jwks()["keys"], new_key.jwk]}
    rotated = _token(pool, new_key)
    clock.advance(1)  # the first fetch happened less than the interval ago
    responses = [_get(rotated) for _ in range(5)]
    assert [r.status_code for r in responses] == [401] * 5
    assert {r.json()["code"] for r in responses} == {"token_invalid"}
    assert len(fetches) == 1

    clock.advance(30)  # the interval has passed: one refetch finds the new key
    assert _get(rotated).status_code == 200
    assert len(fetches) == 2
    for _ in range(5):
        assert _get(rotated).status_code == 200
        assert _get(alice).status_code == 200
    assert len(fetches) == 2


@pytest.mark.django_db
def test_a_flood_of_unknown_kids_costs_one_fetch_per_interval(
    pool: Pool, alice: str, fetches: JWKSFetches, clock: FakeClock, settings: Any
) -> None:
    settings.COGNITO_MFA_JWKS_MIN_REFETCH_INTERVAL = timedelta(seconds=5)
    assert _get(alice).status_code == 200
    for second in range(20):
        clock.advance(1)
        claims = access_claims(region="us-east-1", pool_id=pool.pool_id, client_id=pool.client_id)
        forged = cached_key("junk", "junk").sign(claims, kid=f"junk-kid-{second}")
        assert _get(forged).status_code == 401
    # 20 s of unknown kids, at most one fetch per 5 s (plus the first one).
    assert len(fetches) == 1 + 4
    assert _get(alice).status_code == 200


@pytest.mark.django_db
def test_keys_reset_when_the_jwks_url_changes(
    alice: str, fetches: JWKSFetches, clock: FakeClock, settings: Any
) -> None:
    assert _get(alice).status_code == 200
    assert _get(alice).status_code == 200
    assert len(fetches) == 1

    settings.COGNITO_MFA_JWKS_URL = "https://keys.example.test/pool/jwks.json"
    assert _get(alice).status_code == 200
    assert fetches.urls[1:] == ["https://keys.example.test/pool/jwks.json"]
    assert _get(alice).status_code == 200
    assert len(fetches) == 2


def test_cache_notices_a_new_url_by_itself(
    fetches: JWKSFetches, clock: FakeClock, settings: Any
) -> None:
    """A cache the ``setting_changed`` receiver does not know still compares the URL."""
    cache = tokens.JWKSCache()
    cache.get_key_and_generation("dummy")
    cache.get_key_and_generation("dummy")
    settings.COGNITO_MFA_JWKS_URL = "https://other.example.test/jwks.json"
    cache.get_key_and_generation("dummy")
    assert fetches.urls[-1] == "https://other.example.test/jwks.json"
    assert len(fetches) == 2


@pytest.mark.django_db
def test_stale_keys_are_refreshed_after_the_cache_ttl(
    alice: str, fetches: JWKSFetches, clock: FakeClock, settings: Any
) -> None:
    settings.COGNITO_MFA_JWKS_CACHE_TTL = timedelta(hours=1)
    assert _get(alice).status_code == 200
    clock.advance(3599)
    assert _get(alice).status_code == 200
    assert len(fetches) == 1
    clock.advance(2)
    assert _get(alice).status_code == 200
    assert len(fetches) == 2


@pytest.mark.django_db
def test_known_keys_keep_working_while_the_jwks_endpoint_is_down(
    alice: str, fetches: JWKSFetches, clock: FakeClock, settings: Any
) -> None:
    settings.COGNITO_MFA_JWKS_CACHE_TTL = timedelta(minutes=1)
    assert _get(alice).status_code == 200
    fetches.fail = True
    clock.advance(120)
    assert _get(alice).status_code == 200
    assert len(fetches) == 2


@pytest.mark.django_db
def test_no_keys_and_jwks_endpoint_down_is_unavailable(
    alice: str, fetches: JWKSFetches, clock: FakeClock
) -> None:
    fetches.fail = True
    response = _get(alice)
    assert response.status_code == 503
    assert response.json()["code"] == "cognito_unavailable"
    assert int(response.headers["Retry-After"]) >= 1


def test_validate_access_token_returns_the_claims(
    pool: Pool, alice: str, fetches: JWKSFetches
) -> None:
    token = tokens.validate_access_token(alice)
    assert token.username == "alice"
    assert token.client_id == pool.client_id
    assert token.expires_at.timestamp() > token.auth_time.timestamp()  # type: ignore[union-attr]
    # The raw token is a credential: it never shows in a repr.
    assert alice not in repr(token)


def test_oversized_token_is_refused_without_parsing(fetches: JWKSFetches) -> None:
    with pytest.raises(exc.TokenInvalid):
        tokens.validate_access_token("a" * 20000)
    assert len(fetches) == 0
