"""Access tokens for the tests: signed with keys of our own, unsigned, or HS256."""

from __future__ import annotations

import base64
import functools
import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from moto.utilities.utils import load_resource

MOTO_KID = "dummy"  # the kid moto signs every token with


def moto_public_jwks() -> dict[str, Any]:
    """The JWKS moto's pools sign with (what the test adapter serves by default)."""
    return load_resource("cognitoidp/resources/jwks-public.json")


class SigningKey:
    """An RSA key pair of our own, with its public half as a JWKS entry."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key()))
        self.jwk = {**public, "kid": kid, "alg": "RS256", "use": "sig"}

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        """Sign ``claims`` with RS256; a header entry set to None is left out."""
        headers = {key: value for key, value in {"kid": self.kid, **header}.items() if value}
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers=headers)


@functools.cache
def cached_key(name: str, kid: str) -> SigningKey:
    """A key made once per test process (2048-bit RSA key generation is slow)."""
    return SigningKey(kid)


def access_claims(
    *,
    region: str,
    pool_id: str,
    client_id: str,
    username: str = "mallory",
    lifetime: int = 3600,
    **overrides: Any,
) -> dict[str, Any]:
    """Claims shaped like a Cognito access token of ``username``."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": f"https://cognito-idp.{region}.amazonaws.com/{pool_id}",
        "sub": f"sub-{username}",
        "client_id": client_id,
        "token_use": "access",
        "scope": "aws.cognito.signin.user.admin",
        "auth_time": now,
        "iat": now,
        "exp": now + lifetime,
        "jti": f"jti-{now}",
        "username": username,
    }
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unsigned_token(claims: dict[str, Any], kid: str = MOTO_KID) -> str:
    """An ``alg: none`` token (no signature)."""
    header = {"alg": "none", "typ": "JWT", "kid": kid}
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}."


def hs256_token(claims: dict[str, Any], secret: bytes, kid: str = MOTO_KID) -> str:
    """An HS256 token, e.g. keyed with the pool's public key material (alg confusion)."""
    import hashlib
    import hmac

    header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"
