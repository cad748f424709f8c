"""Validation of Cognito access tokens, with the pool's signing keys cached per process."""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import re
import threading
import time
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import jwt
from django.utils.module_loading import import_string
from django.views.decorators.debug import sensitive_variables

from . import exceptions as exc
from .conf import app_settings

# Only RS256: Cognito signs with it, and accepting anything else invites alg confusion
# (``none``, or HS256 keyed with the public key).
ALLOWED_ALGORITHMS = ["RS256"]


@dataclass(frozen=True)
class AccessToken:
    """A validated Cognito access token. ``raw`` is a credential: never log or store it plain."""

    raw: str = field(repr=False)
    username: str
    sub: str
    client_id: str
    expires_at: datetime
    auth_time: datetime | None
    claims: dict[str, Any] = field(repr=False, compare=False)


class JWKSCache:
    """Signing keys of one JWKS URL, fetched by ``COGNITO_MFA_JWKS_FETCHER``: once, again on
    an unknown ``kid`` at most every ``COGNITO_MFA_JWKS_MIN_REFETCH_INTERVAL``, and when older
    than the cache TTL."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._url: str | None = None
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0
        self._last_attempt = float("-inf")
        self.fetch_count = 0
        # Bumped whenever the key set may change: tokens checked against an older set are
        # checked again (see ValidatedTokens).
        self.generation = 0

    def clear(self) -> None:
        with self._lock:
            self._url, self._keys = None, {}
            self._fetched_at, self._last_attempt = 0.0, float("-inf")
            self.generation += 1

    def is_current(self, generation: int) -> bool:
        """Tell whether the keys of ``generation`` are still the ones in use and fresh."""
        return (
            generation == self.generation
            and self._url == app_settings.JWKS_URL
            and not self._is_stale()
        )

    def get_key_and_generation(self, kid: str) -> tuple[jwt.PyJWK, int]:
        """Return the key ``kid`` and the generation of the key set it belongs to; raise
        TokenInvalid if the pool has no such key."""
        url = app_settings.JWKS_URL
        if self._url == url and not self._is_stale():
            # The generation first: a refresh in between then only makes it look older.
            generation = self.generation
            key = self._keys.get(kid)
            if key is not None:
                return key, generation
        with self._lock:
            if self._url != url:  # the setting changed: start over
                self._url, self._keys, self._fetched_at = url, {}, 0.0
                self._last_attempt = float("-inf")
                self.generation += 1
            key = self._keys.get(kid)
            interval = app_settings.JWKS_MIN_REFETCH_INTERVAL.total_seconds()
            may_fetch = time.monotonic() - self._last_attempt >= interval
            if (key is None or self._is_stale()) and may_fetch:
                self._refresh(url)
                key = self._keys.get(kid)
            generation = self.generation
        if key is None:
            raise exc.TokenInvalid()
        return key, generation

    def _is_stale(self) -> bool:
        age = time.monotonic() - self._fetched_at
        return not self._keys or age > app_settings.JWKS_CACHE_TTL.total_seconds()

    def _refresh(self, url: str) -> None:
        # Outside the ``try``: a fetcher that does not import is the operator's error (system
        # check cognito_mfa.E013), not an unavailable pool.
        fetch = import_string(app_settings.JWKS_FETCHER)
        self._last_attempt = time.monotonic()
        try:
            document = fetch(url)
            keys = {
                item["kid"]: jwt.PyJWK(item)
                for item in document.get("keys", [])
                if item.get("kty") == "RSA" and item.get("kid")
            }
        except Exception as error:
            if self._keys:  # keep serving the keys we have while the endpoint is down
                return
            raise exc.CognitoUnavailable(
                retry_after=app_settings.UNAVAILABLE_RETRY_AFTER
            ) from error
        self.fetch_count += 1
        self._keys, self._fetched_at = keys, time.monotonic()
        self.generation += 1


jwks_cache = JWKSCache()


@dataclass(frozen=True)
class _Checked:
    """What a full validation established about one token (never the token itself)."""

    token: AccessToken  # with ``raw`` blanked
    key_generation: int
    issuer: str
    expires_at: int


class ValidatedTokens:
    """Tokens already validated in full, by SHA-256 of the token.

    An SPA sends the same access token with each of its requests; checking its RS256
    signature again and re-parsing it (PyJWT checks every character in Python) was the
    largest part of authenticating a request. An entry answers only while the token is
    unexpired (checked on every use, with the same leeway), the signing keys it was checked
    against are still the fresh, current set, and the issuer and client id it was checked
    against are still configured; otherwise the token is validated in full again. Bounded
    (least recently used out first); it keeps digests and claims, no token.
    """

    MAX_ENTRIES = 1024

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, _Checked] = OrderedDict()

    @staticmethod
    def _digest(raw: str) -> bytes:
        return hashlib.sha256(raw.encode("utf-8")).digest()

    @sensitive_variables("raw")
    def get(self, raw: str) -> AccessToken | None:
        digest = self._digest(raw)
        with self._lock:
            checked = self._entries.get(digest)
            if checked is None:
                return None
            self._entries.move_to_end(digest)
        leeway = app_settings.JWT_LEEWAY.total_seconds()
        if (
            datetime.now(tz=UTC).timestamp() >= checked.expires_at + leeway
            or not jwks_cache.is_current(checked.key_generation)
            or checked.issuer != app_settings.ISSUER_URL
            or checked.token.client_id not in app_settings.APP_CLIENT_IDS
        ):
            return None
        return replace(checked.token, raw=raw, claims=copy.deepcopy(checked.token.claims))

    @sensitive_variables("raw", "token", "checked")
    def put(self, raw: str, token: AccessToken, *, key_generation: int) -> None:
        checked = _Checked(
            token=replace(token, raw="", claims=copy.deepcopy(token.claims)),
            key_generation=key_generation,
            issuer=app_settings.ISSUER_URL,
            # As PyJWT compares it: the whole seconds of ``exp``.
            expires_at=int(token.claims["exp"]),
        )
        digest = self._digest(raw)
        with self._lock:
            self._entries[digest] = checked
            self._entries.move_to_end(digest)
            while len(self._entries) > self.MAX_ENTRIES:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


validated_tokens = ValidatedTokens()


_HEADER_SEGMENT = re.compile(r"[A-Za-z0-9_-]{1,1024}")


@sensitive_variables("raw")
def _unverified_header(raw: str) -> dict[str, Any]:
    """Read the JOSE header only to pick the signing key; ``jwt.decode`` checks it again.

    ``jwt.get_unverified_header`` decodes and checks every segment of the token, and
    ``jwt.decode`` then does all of it again: reading the short header segment alone halves
    PyJWT's parsing work per request without trusting anything it says.
    """
    segment = raw.partition(".")[0]
    if not _HEADER_SEGMENT.fullmatch(segment):
        raise exc.TokenInvalid()
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError, RecursionError):
        raise exc.TokenInvalid() from None
    if not isinstance(header, dict):
        raise exc.TokenInvalid()
    return header


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=UTC)
    return None


@sensitive_variables("raw", "cached")
def validate_access_token(raw: str) -> AccessToken:
    """Validate a Cognito access token and return its claims.

    Raise TokenInvalid unless it is an RS256 token signed by a key of the configured pool,
    issued by that pool, unexpired, with ``token_use == "access"`` and an allowed client id.
    """
    if not raw or len(raw) > 16384:
        raise exc.TokenInvalid()
    cached = validated_tokens.get(raw)
    if cached is not None:
        return cached
    return _validate_in_full(raw)


@sensitive_variables("raw", "claims", "token")
def _validate_in_full(raw: str) -> AccessToken:
    header = _unverified_header(raw)
    if header.get("alg") not in ALLOWED_ALGORITHMS or not isinstance(header.get("kid"), str):
        raise exc.TokenInvalid()
    key, key_generation = jwks_cache.get_key_and_generation(header["kid"])
    try:
        claims = jwt.decode(
            raw,
            key=key,
            algorithms=ALLOWED_ALGORITHMS,
            issuer=app_settings.ISSUER_URL,
            leeway=app_settings.JWT_LEEWAY,
            options={"require": ["exp", "iss", "token_use", "client_id"], "verify_aud": False},
        )
    except jwt.PyJWTError:
        raise exc.TokenInvalid() from None
    if claims.get("token_use") != "access":
        raise exc.TokenInvalid()
    if claims.get("client_id") not in app_settings.APP_CLIENT_IDS:
        raise exc.TokenInvalid()
    username = claims.get("username")
    if not isinstance(username, str) or not username:
        raise exc.TokenInvalid()
    expires_at = _timestamp(claims["exp"])
    if expires_at is None:
        raise exc.TokenInvalid()
    token = AccessToken(
        raw=raw,
        username=username,
        sub=str(claims.get("sub", "")),
        client_id=claims["client_id"],
        expires_at=expires_at,
        auth_time=_timestamp(claims.get("auth_time")),
        claims=claims,
    )
    validated_tokens.put(raw, token, key_generation=key_generation)
    return token


def fetch_jwks_over_http(url: str, timeout: float = 3.0) -> dict[str, Any]:
    """Fetch a JWKS document (https, or http for a local endpoint such as moto): the default
    ``COGNITO_MFA_JWKS_FETCHER``.

    A fetcher of a site's own (an outbound proxy, keys shipped with the site) takes the URL
    and returns the parsed document; any exception it raises counts as the endpoint being
    down (the keys already held are kept, or the request gets ``cognito_unavailable``).
    """
    if not url.startswith(("https://", "http://")):
        raise ValueError("JWKS URL must be http(s)")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return json.loads(response.read(1_000_000))
