"""What stands between the app and Cognito answers on its own: a load balancer's, proxy's or VPC
endpoint's bare HTTP status, with an empty body or a page of HTML or text and no AWS error
type. A 5xx is Cognito being unreachable (503 ``cognito_unavailable``, ``Retry-After``, nothing
changed); a 4xx stays a configuration problem (502 ``cognito_error``).

The gateway is a real HTTP server on 127.0.0.1 and ``COGNITO_MFA_ENDPOINT_URL`` points at it,
so botocore parses the raw answer as it would in production.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from botocore.stub import Stubber
from rest_framework.test import APIClient

from cognito_mfa.cognito import get_client
from cognito_mfa.models import AuditEvent, Enrollment
from tests.support.cognito import Pool, fresh_code

BASE = "/api/mfa/"
RETRY_AFTER = 7


class Gateway:
    """Answer every request with one fixed status, content type and body; count requests."""

    def __init__(self) -> None:
        self.status, self.content_type, self.body = 503, "", b""
        self.requests = 0
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                gateway.requests += 1
                self.send_response(gateway.status)
                if gateway.content_type:
                    self.send_header("Content-Type", gateway.content_type)
                self.send_header("Content-Length", str(len(gateway.body)))
                self.end_headers()
                self.wfile.write(gateway.body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, status: int, content_type: str, body: bytes) -> None:
        self.status, self.content_type, self.body = status, content_type, body


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    running = Gateway()
    running.thread.start()
    yield running
    running.server.shutdown()
    running.server.server_close()


HTML_503 = (
    b"<html><head><title>503 Service Temporarily Unavailable</title></head><body><center>"
    b"<h1>503 Service Temporarily Unavailable</h1></center></body></html>"
)
GATEWAY_DOWN = {
    "503 empty": (503, "", b""),
    "503 HTML": (503, "text/html", HTML_503),
    "502 text": (502, "text/plain", b"Bad Gateway"),
    "504 HTML": (504, "text/html", b"<html><body>504 Gateway Time-out</body></html>"),
    "500 text": (500, "text/plain; charset=utf-8", b"upstream connect error"),
}
PROXY_REFUSES = {
    "403 HTML": (403, "text/html", b"<html><body><h1>403 Forbidden</h1></body></html>"),
    "404 text": (404, "text/plain", b"Not Found"),
    "400 empty": (400, "", b""),
}


def _behind(gateway: Gateway, settings: Any, answer: tuple[int, str, bytes]) -> None:
    settings.COGNITO_MFA_ENDPOINT_URL = gateway.url  # the JWKS still comes from moto
    settings.COGNITO_MFA_MAX_RETRY_ATTEMPTS = 1
    settings.COGNITO_MFA_UNAVAILABLE_RETRY_AFTER = RETRY_AFTER
    gateway.answer(*answer)


@pytest.fixture
def rosa_api(server_pool: Pool) -> APIClient:
    server_pool.create_user("rosa", email="rosa@example.com")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {server_pool.access_token('rosa')}")
    return api


def _state() -> tuple[Any, ...]:
    return (
        sorted(Enrollment.objects.values_list("id", "status", "attempts", "verify_lease_until")),
        sorted(AuditEvent.objects.values_list("kind", "outcome")),
    )


@pytest.mark.django_db
@pytest.mark.parametrize("case", list(GATEWAY_DOWN))
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "enrollments/", {}),
        ("get", "status/", None),
        ("post", "preference/", {"enabled": False, "preferred": False}),
    ],
    ids=["start", "status", "preference"],
)
def test_a_gateways_bare_5xx_is_cognito_unavailable(
    rosa_api: APIClient,
    gateway: Gateway,
    settings: Any,
    case: str,
    method: str,
    path: str,
    body: Any,
) -> None:
    assert rosa_api.get(BASE + "enrollments/").status_code == 200  # the site user exists
    before = _state()
    _behind(gateway, settings, GATEWAY_DOWN[case])
    response = getattr(rosa_api, method)(BASE + path, body, format="json")
    assert gateway.requests == 1
    assert response.status_code == 503, response.content
    assert response.json()["code"] == "cognito_unavailable"
    assert response["Retry-After"] == str(RETRY_AFTER)
    assert _state() == before


@pytest.mark.django_db
@pytest.mark.parametrize("case", list(PROXY_REFUSES))
def test_a_proxys_bare_4xx_stays_a_configuration_error(
    rosa_api: APIClient, gateway: Gateway, settings: Any, case: str
) -> None:
    _behind(gateway, settings, PROXY_REFUSES[case])
    response = rosa_api.post(BASE + "enrollments/", {}, format="json")
    assert response.status_code == 502, response.content
    assert response.json()["code"] == "cognito_error"
    assert "Retry-After" not in response
    assert not Enrollment.objects.exists()


@pytest.mark.django_db
def test_a_verify_behind_a_gateways_503_changes_nothing_and_can_be_retried(
    rosa_api: APIClient, gateway: Gateway, server_pool: Pool, settings: Any
) -> None:
    started = rosa_api.post(BASE + "enrollments/", {}, format="json").json()
    moto = settings.COGNITO_MFA_ENDPOINT_URL
    before = _state()
    _behind(gateway, settings, GATEWAY_DOWN["503 HTML"])
    verify = f"{BASE}enrollments/{started['id']}/verify/"

    response = rosa_api.post(verify, {"user_code": fresh_code()}, format="json")

    assert (response.status_code, response.json()["code"]) == (503, "cognito_unavailable")
    assert response["Retry-After"] == str(RETRY_AFTER)
    assert _state() == before  # no wrong code counted, the lease given back, no audit row
    settings.COGNITO_MFA_ENDPOINT_URL = moto
    retried = rosa_api.post(verify, {"user_code": fresh_code()}, format="json")
    assert retried.status_code == 200, retried.content
    assert server_pool.mfa_state("rosa")["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA"]


@pytest.mark.django_db
@pytest.mark.parametrize(("status", "expected"), [(503, 503), (500, 503), (403, 502)])
def test_an_error_named_only_by_its_status_is_classified_by_it(
    alice_api: APIClient, status: int, expected: int
) -> None:
    """botocore names an answer without an AWS error type by its status ("503"): Stubber."""
    with Stubber(get_client().client) as stubber:
        stubber.add_client_error(
            "associate_software_token", service_error_code=str(status), http_status_code=status
        )
        response = alice_api.post(BASE + "enrollments/", {}, format="json")
        stubber.assert_no_pending_responses()
    assert response.status_code == expected, response.content
    assert ("Retry-After" in response) == (expected == 503)
