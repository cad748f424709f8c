"""Signing keys, access tokens and the boundary's seams the benchmark runs the app with.

The benchmark signs its own RS256 access tokens; the app validates them for real against the
JWKS the fetcher here serves (from ``COGNITO_MFA_BENCH_JWKS``, so gunicorn workers see it
too). The fetcher and the client factory count JWKS fetches and boto3 clients built in this
process.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from django.http import HttpRequest, JsonResponse

from cognito_mfa.cognito import build_boto3_client

REGION = "us-east-1"
POOL_ID = "us-east-1_Bench0001"
CLIENT_ID = "benchclient0000000000000001"
ISSUER = f"https://cognito-idp.{REGION}.amazonaws.com/{POOL_ID}"
JWKS_ENV = "COGNITO_MFA_BENCH_JWKS"


class SigningKey:
    """An RSA key pair standing in for the user pool's; mints access tokens."""

    def __init__(self) -> None:
        self.kid = uuid.uuid4().hex
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key()))
        public.update({"kid": self.kid, "alg": "RS256", "use": "sig"})
        return {"keys": [public]}

    def access_token(self, username: str, lifetime: int = 3600) -> str:
        now = int(time.time())
        claims = {
            "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, username)),
            "iss": ISSUER,
            "client_id": CLIENT_ID,
            "origin_jti": uuid.uuid4().hex,
            "event_id": uuid.uuid4().hex,
            "token_use": "access",
            "scope": "aws.cognito.signin.user.admin",
            "auth_time": now,
            "iat": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
            "username": username,
        }
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": self.kid})


_counts_lock = threading.Lock()
COUNTS = {"boto3_clients": 0, "jwks_fetches": 0}


def build_counted_boto3_client() -> Any:
    """``COGNITO_MFA_CLIENT_FACTORY``: the default client, counted."""
    with _counts_lock:
        COUNTS["boto3_clients"] += 1
    return build_boto3_client()


def fetch_bench_jwks(url: str) -> dict[str, Any]:
    """``COGNITO_MFA_JWKS_FETCHER``: the keys from the environment, counted."""
    with _counts_lock:
        COUNTS["jwks_fetches"] += 1
    document: dict[str, Any] = json.loads(os.environ[JWKS_ENV])
    return document


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def process_view(request: HttpRequest) -> JsonResponse:
    """Report this worker's pid, RSS and counters (bench URLconf only)."""
    return JsonResponse({"pid": os.getpid(), "rss_kb": _rss_kb(), **COUNTS})
