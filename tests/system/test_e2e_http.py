"""The whole access-token flow over real HTTP: requests -> live Django -> moto server."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.support.cognito import Pool, fresh_code
from tests.support.signals import SignalLog

pytestmark = pytest.mark.django_db(transaction=True)


def test_enroll_verify_and_cognito_turns_totp_on(
    live_server: Any, server_pool: Pool, signal_log: SignalLog
) -> None:
    server_pool.create_user("erin", email="erin@example.com")
    token = server_pool.access_token("erin")
    base = f"{live_server.url}/api/mfa/"
    headers = {"Authorization": f"Bearer {token}"}

    started = requests.post(
        base + "enrollments/",
        json={"friendly_device_name": "Erin's phone"},
        headers=headers,
        timeout=10,
    )
    assert started.status_code == 201, started.text
    assert started.headers["Cache-Control"] == "no-store"
    body = started.json()
    assert body["status"] == "pending"
    assert body["qr_code_svg"].startswith("data:image/svg+xml")
    assert body["qr_code_png"].startswith("data:image/png;base64,")
    query = parse_qs(urlsplit(body["otpauth_uri"]).query)
    assert query["secret"] == [body["secret_code"]]
    assert query["issuer"] == ["Example Site"]

    verified = requests.post(
        base + f"enrollments/{body['id']}/verify/",
        json={"user_code": fresh_code(body["secret_code"])},
        headers=headers,
        timeout=10,
    )
    assert verified.status_code == 200, verified.text
    assert verified.json() == {
        "id": body["id"],
        "status": "verified",
        "mfa_enabled": True,
        "preferred": True,
    }

    user = server_pool.client.get_user(AccessToken=token)
    assert user["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA"]
    assert user["PreferredMfaSetting"] == "SOFTWARE_TOKEN_MFA"

    status = requests.get(base + "status/", headers=headers, timeout=10).json()
    assert status == {
        "software_token_mfa_enabled": True,
        "preferred_mfa": "SOFTWARE_TOKEN_MFA",
        "pending_enrollment": None,
    }

    received = signal_log.named("software_token_verified")
    assert len(received) == 1
    kwargs = received[0]
    assert set(kwargs) == {
        "sender",
        "enrollment",
        "user",
        "request",
        "source",
        "actor",
        "friendly_device_name",
    }
    assert str(kwargs["enrollment"].id) == body["id"]
    assert kwargs["user"].username == "erin"
    assert kwargs["actor"] == kwargs["user"]
    assert kwargs["source"] == "api"
    assert kwargs["friendly_device_name"] == "Erin's phone"
    assert kwargs["request"].path.endswith("/verify/")
