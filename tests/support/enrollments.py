"""The one way a test starts an enrollment through the REST API (and sends its code)."""

from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient

from cognito_mfa.models import Enrollment
from tests.support.cognito import Pool

ENROLLMENTS_URL = "/api/mfa/enrollments/"


def verify_url(enrollment_id: Any) -> str:
    return f"{ENROLLMENTS_URL}{enrollment_id}/verify/"


def start_enrollment(api: APIClient, **body: Any) -> dict[str, Any]:
    """``POST enrollments/`` as ``api``'s user; assert a 201 and return the body."""
    response = api.post(ENROLLMENTS_URL, body, format="json")
    assert response.status_code == 201, response.content
    return dict(response.json())


def verify_enrollment(api: APIClient, enrollment_id: Any, code: str, **extra: Any) -> Any:
    """``POST enrollments/{id}/verify/`` with ``code``; return the response as it is."""
    return api.post(verify_url(enrollment_id), {"user_code": code, **extra}, format="json")


def bearer_client(access_token: str) -> APIClient:
    """An API client sending ``access_token`` as its bearer token."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token}")
    return client


def start_via_api(pool: Pool, username: str, device: str = "") -> tuple[Enrollment, str, str]:
    """Create ``username`` in the pool, sign in and start an enrollment through the API.

    Return the enrollment, the access token and the secret the API showed.
    """
    pool.create_user(username, email=f"{username}@example.com")
    token = pool.access_token(username)
    body = start_enrollment(bearer_client(token), friendly_device_name=device)
    enrollment = Enrollment.objects.select_related("user").get(pk=body["id"])
    # The default adapter maps by username only; a host's adapter would also copy the e-mail.
    enrollment.user.email = f"{username}@example.com"
    enrollment.user.save(update_fields=["email"])
    return enrollment, token, body["secret_code"]
