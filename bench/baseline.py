"""The baseline: bare DRF views making the same Cognito calls as the app, nothing else.

No token validation, no database, no QR code: one reused boto3 client with the app's timeouts
and retry mode. ``app time - baseline time`` is what cognito_mfa adds to a request.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
import botocore.config
from django.conf import settings
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

_lock = threading.Lock()
_client: Any = None


def client() -> Any:
    """Return the process-wide boto3 client, built on first use."""
    global _client
    with _lock:
        if _client is None:
            _client = boto3.session.Session().client(
                "cognito-idp",
                region_name=settings.COGNITO_MFA_REGION,
                endpoint_url=settings.COGNITO_MFA_ENDPOINT_URL,
                config=botocore.config.Config(
                    connect_timeout=2.0,
                    read_timeout=5.0,
                    retries={"mode": "standard", "total_max_attempts": 3},
                ),
            )
        return _client


def _bearer(request: Request) -> str:
    return request.META.get("HTTP_AUTHORIZATION", "").partition(" ")[2]


class BareView(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]


class BaselineStartView(BareView):
    """``AssociateSoftwareToken``, like starting an enrollment.

    The app calls ``GetUser`` first only for a sign-in older than
    ``COGNITO_MFA_REAUTH_MAX_AGE``; the benchmark's tokens are minted fresh, so its start
    makes this one call, and so does the baseline.
    """

    def post(self, request: Request) -> Response:
        token = _bearer(request)
        secret = client().associate_software_token(AccessToken=token)["SecretCode"]
        return Response({"id": "baseline", "secret_code": secret}, status=201)


class BaselineVerifyView(BareView):
    """``VerifySoftwareToken`` then ``SetUserMFAPreference``, like verifying one."""

    def post(self, request: Request, enrollment_id: str) -> Response:
        token = _bearer(request)
        result = client().verify_software_token(
            AccessToken=token, UserCode=str(request.data.get("user_code", ""))
        )
        client().set_user_mfa_preference(
            AccessToken=token,
            SoftwareTokenMfaSettings={"Enabled": True, "PreferredMfa": True},
        )
        return Response({"id": enrollment_id, "status": result["Status"].lower()})
