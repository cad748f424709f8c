"""The per-process cache of fully validated access tokens answers only while the full check
would still pass: unexpired, same fresh signing keys, same issuer and client ids."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import jwt
import pytest

from cognito_mfa import exceptions as exc
from cognito_mfa import tokens
from cognito_mfa.conf import app_settings
from tests.support.cognito import Pool, TestJWKS
from tests.support.tokens import SigningKey, access_claims, cached_key, moto_public_jwks


@pytest.fixture
def own_key(pool: Pool) -> SigningKey:
    key = cached_key("own", "own-key-1")
    TestJWKS.override = {"keys": [*moto_public_jwks()["keys"], key.jwk]}
    return key


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every full signature check (``jwt.decode``) the app makes."""
    calls: list[str] = []
    original = jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(token)
        return original(token, *args, **kwargs)

    monkeypatch.setattr(tokens.jwt, "decode", counting)
    return calls


def _token(pool: Pool, key: SigningKey, **overrides: Any) -> str:
    claims = access_claims(
        region="us-east-1", pool_id=pool.pool_id, client_id=pool.client_id, **overrides
    )
    return key.sign(claims)


def test_a_token_is_checked_in_full_once(pool: Pool, own_key: SigningKey, decodes: Any) -> None:
    raw = _token(pool, own_key, username="alice")
    first = tokens.validate_access_token(raw)
    first.claims["username"] = "changed by a caller"
    second = tokens.validate_access_token(raw)
    assert len(decodes) == 1
    assert second == first
    assert second.raw == raw
    assert second.username == "alice"
    assert second.claims["username"] == "alice"  # each caller gets its own copy


def test_each_caller_gets_its_own_nested_claims(pool: Pool, own_key: SigningKey) -> None:
    raw = _token(pool, own_key, **{"cognito:groups": ["staff"]})
    tokens.validate_access_token(raw).claims["cognito:groups"].append("admin")
    cached = tokens.validate_access_token(raw)
    cached.claims["cognito:groups"].append("admin")
    assert tokens.validate_access_token(raw).claims["cognito:groups"] == ["staff"]


def test_the_cache_keeps_no_token(pool: Pool, own_key: SigningKey) -> None:
    raw = _token(pool, own_key)
    tokens.validate_access_token(raw)
    stored = repr(list(tokens.validated_tokens._entries.items()))
    signature = raw.rsplit(".", 1)[1]
    assert raw not in stored
    assert signature not in stored


def test_an_expired_token_is_refused_although_it_was_cached(
    pool: Pool, own_key: SigningKey
) -> None:
    # exp counts whole seconds from a truncated now: 2 s leaves at least one for the first
    # check on a loaded machine. Then wait until just past exp itself.
    expires_at = int(time.time()) + 2
    raw = _token(pool, own_key, exp=expires_at)
    tokens.validate_access_token(raw)
    time.sleep(max(0.0, expires_at - time.time()) + 0.1)
    with pytest.raises(exc.TokenInvalid):
        tokens.validate_access_token(raw)


def test_a_tampered_copy_of_a_cached_token_is_refused(pool: Pool, own_key: SigningKey) -> None:
    raw = _token(pool, own_key)
    tokens.validate_access_token(raw)
    header, payload, signature = raw.split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    with pytest.raises(exc.TokenInvalid):
        tokens.validate_access_token(f"{header}.{payload}.{flipped}")


def test_new_signing_keys_mean_a_full_check(pool: Pool, own_key: SigningKey, decodes: Any) -> None:
    raw = _token(pool, own_key)
    tokens.validate_access_token(raw)
    tokens.jwks_cache.clear()  # what a changed JWKS URL or a key refresh does
    tokens.validate_access_token(raw)
    assert len(decodes) == 2
    # The key is gone from the pool's JWKS: the cached result no longer counts.
    TestJWKS.override = moto_public_jwks()
    tokens.jwks_cache.clear()
    with pytest.raises(exc.TokenInvalid):
        tokens.validate_access_token(raw)


def test_a_key_dropped_by_a_refresh_of_the_same_url_is_not_trusted_from_the_cache(
    pool: Pool, own_key: SigningKey, settings: Any
) -> None:
    settings.COGNITO_MFA_JWKS_MIN_REFETCH_INTERVAL = timedelta(0)
    raw = _token(pool, own_key)
    tokens.validate_access_token(raw)
    # The pool drops the key; a token naming an unknown kid makes this process refetch the
    # same URL, and the cached result for the first token must go with the old key set.
    TestJWKS.override = moto_public_jwks()
    stranger = cached_key("stranger", "unknown-kid")
    with pytest.raises(exc.TokenInvalid):
        tokens.validate_access_token(_token(pool, stranger))
    with pytest.raises(exc.TokenInvalid):
        tokens.validate_access_token(raw)


def test_stale_signing_keys_mean_a_full_check(
    pool: Pool, own_key: SigningKey, decodes: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = _token(pool, own_key)
    tokens.validate_access_token(raw)
    tokens.validate_access_token(raw)
    assert len(decodes) == 1
    later = time.monotonic() + app_settings.JWKS_CACHE_TTL.total_seconds() + 1

    class Later:
        """Stands in for the ``time`` module inside cognito_mfa.tokens."""

        @staticmethod
        def monotonic() -> float:
            return later

    monkeypatch.setattr(tokens, "time", Later)
    tokens.validate_access_token(raw)
    assert len(decodes) == 2


def test_a_client_id_no_longer_allowed_is_refused(
    pool: Pool, own_key: SigningKey, settings: Any
) -> None:
    raw = _token(pool, own_key)
    tokens.validate_access_token(raw)
    settings.COGNITO_MFA_APP_CLIENT_IDS = ["another-client"]
    with pytest.raises(exc.TokenInvalid):
        tokens.validate_access_token(raw)


def test_an_entry_checks_the_settings_itself(
    pool: Pool, own_key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even without the setting_changed signal (settings edited some other way)."""
    raw = _token(pool, own_key)
    tokens.validate_access_token(raw)
    assert tokens.validated_tokens.get(raw) is not None
    monkeypatch.setattr(type(app_settings), "APP_CLIENT_IDS", property(lambda self: ["other"]))
    assert tokens.validated_tokens.get(raw) is None
    monkeypatch.undo()
    monkeypatch.setattr(type(app_settings), "ISSUER_URL", property(lambda self: "https://x"))
    assert tokens.validated_tokens.get(raw) is None


def test_the_cache_is_bounded(
    pool: Pool, own_key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tokens.ValidatedTokens, "MAX_ENTRIES", 3)
    raws = [_token(pool, own_key, username=f"user-{index}") for index in range(5)]
    for raw in raws:
        tokens.validate_access_token(raw)
    assert len(tokens.validated_tokens) == 3
    assert tokens.validated_tokens.get(raws[0]) is None
    assert tokens.validated_tokens.get(raws[-1]) is not None
