"""Bad requests to the REST API: a code from the error table with its status, no Cognito call,
nothing changed, never a 500. Complements test_input_and_auth.py (bodies, tokens) with odd
encodings, ids, Authorization headers and sign-in challenge input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from cognito_mfa.models import AuditEvent, Enrollment, FailureCounter
from tests.support.cognito import Pool, count_cognito_calls, fresh_code
from tests.support.enrollments import start_enrollment

BASE = "/api/mfa/"

# The error table of docs/api.md: the only codes a client may see, with their statuses.
DOCUMENTED_CODES = {
    "invalid": 400,
    "invalid_code": 400,
    "not_authenticated": 401,
    "token_invalid": 401,
    "reauthentication_required": 401,
    "not_found": 404,
    "method_not_allowed": 405,
    "not_acceptable": 406,
    "enrollment_locked": 409,
    "enrollment_not_pending": 409,
    "enrollment_expired": 410,
    "request_too_large": 413,
    "unsupported_media_type": 415,
    "throttled": 429,
    "cognito_error": 502,
    "cognito_unavailable": 503,
}


def assert_documented(response: Any, *statuses: int) -> dict[str, Any]:
    """A JSON error body whose code is in the error table, with that code's status."""
    assert response.status_code != 500, response.content[:500]
    body = response.json()
    assert isinstance(body, dict), body
    assert body.get("code") in DOCUMENTED_CODES, (response.status_code, body)
    assert response.status_code == DOCUMENTED_CODES[body["code"]], (response.status_code, body)
    if statuses:
        assert response.status_code in statuses, (response.status_code, body)
    assert isinstance(body.get("detail"), str)
    return body


def snapshot() -> tuple[Any, ...]:
    return (
        sorted(
            Enrollment.objects.values_list(
                "id", "status", "attempts", "friendly_device_name", "verify_lease_until"
            )
        ),
        AuditEvent.objects.count(),
        FailureCounter.objects.count(),
        get_user_model().objects.count(),
    )


def _production(api: APIClient) -> APIClient:
    api.raise_request_exception = False  # a crash is then a 500 response, as in production
    return api


@pytest.fixture
def known_alice(alice_api: APIClient) -> APIClient:
    """Alice's client, her site user already made by a first request (the adapter makes it on
    first sight of a valid token), so snapshots compare only what bad input could change."""
    assert alice_api.get(BASE + "enrollments/").status_code == 200
    return _production(alice_api)


@pytest.fixture
def started(known_alice: APIClient) -> str:
    return str(start_enrollment(known_alice)["id"])


# --- encodings and bodies -----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("charset", ["zlib", "utf-16", "rot13"])
def test_a_strange_charset_is_a_400(known_alice: APIClient, charset: str) -> None:
    before = snapshot()
    with count_cognito_calls() as counter:
        response = known_alice.generic(
            "POST",
            BASE + "enrollments/",
            b'{"friendly_device_name": "phone"}',
            content_type=f"application/json; charset={charset}",
        )
    assert_documented(response, 400)
    assert counter.calls == []
    assert snapshot() == before


BAD_START_BODIES: dict[str, bytes] = {
    "JSON null": b"null",
    "null name": b'{"friendly_device_name": null}',
    "1 MB name": json.dumps({"friendly_device_name": "x" * 1_000_000}).encode(),
    "NUL byte": b'{"friendly_device_name": "ph\\u0000one"}',
    "NaN": b'{"friendly_device_name": NaN}',
    "not UTF-8": b'{"friendly_device_name": "\xff\xfe"}',
    "duplicate keys": b'{"friendly_device_name": "a", "friendly_device_name": 1}',
}


@pytest.mark.django_db
@pytest.mark.parametrize("case", list(BAD_START_BODIES))
def test_malformed_start_bodies_are_400_and_call_nothing(known_alice: APIClient, case: str) -> None:
    before = snapshot()
    with count_cognito_calls() as counter:
        response = known_alice.post(
            BASE + "enrollments/", data=BAD_START_BODIES[case], content_type="application/json"
        )
    assert_documented(response, 400)
    assert counter.calls == []
    assert snapshot() == before


# Every endpoint that takes a body, with a body it would act on if it were small enough.
BODY_ENDPOINTS: dict[str, tuple[str, dict[str, Any]]] = {
    "start": ("enrollments/", {"friendly_device_name": "phone"}),
    "verify": ("enrollments/{id}/verify/", {"user_code": "123456"}),
    "preference": ("preference/", {"enabled": False, "preferred": False}),
    "challenge start": ("challenge/enrollments/", {"username": "alice", "session": "s" * 40}),
    "challenge verify": (
        "challenge/enrollments/{id}/verify/",
        {"challenge_token": "t" * 43, "user_code": "123456"},
    ),
}
UPLOAD_LIMIT = 4096


def _padded(body: dict[str, Any], size: int) -> bytes:
    """``body`` as JSON of exactly ``size`` bytes, made up with a field no serializer reads."""
    empty = json.dumps({**body, "padding": ""}).encode()
    return json.dumps({**body, "padding": "x" * (size - len(empty))}).encode()


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True], ids=["production", "DEBUG"])
@pytest.mark.parametrize("endpoint", list(BODY_ENDPOINTS))
def test_a_body_over_the_upload_limit_is_a_json_413_and_changes_nothing(
    known_alice: APIClient, started: str, settings: Any, endpoint: str, debug: bool
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = UPLOAD_LIMIT
    settings.DEBUG = debug  # Django's technical 400 page is what answered under DEBUG
    path, body = BODY_ENDPOINTS[endpoint]
    before = snapshot()
    with count_cognito_calls() as counter:
        response = known_alice.post(
            BASE + path.format(id=started),
            data=_padded(body, UPLOAD_LIMIT + 1),
            content_type="application/json",
        )
    assert response.status_code == 413, response.content[:300]
    assert response["Content-Type"] == "application/json"
    assert assert_documented(response, 413) == {
        "code": "request_too_large",
        "detail": f"The request body is larger than the {UPLOAD_LIMIT} bytes accepted.",
    }
    assert counter.calls == []
    assert snapshot() == before


@pytest.mark.django_db
def test_a_body_at_the_upload_limit_is_served(known_alice: APIClient, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = UPLOAD_LIMIT
    response = known_alice.post(
        BASE + "enrollments/",
        data=_padded({"friendly_device_name": "phone"}, UPLOAD_LIMIT),
        content_type="application/json",
    )
    assert response.status_code == 201, response.content[:300]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "user_code", ["\u200b123456", "12345\ud800", "1" * 1_000_000], ids=["ZWSP", "surrogate", "1 MB"]
)
def test_odd_user_codes_are_400(known_alice: APIClient, started: str, user_code: str) -> None:
    before = snapshot()
    with count_cognito_calls() as counter:
        response = known_alice.post(
            f"{BASE}enrollments/{started}/verify/",
            data=json.dumps({"user_code": user_code}),
            content_type="application/json",
        )
    assert_documented(response, 400)
    assert counter.calls == []
    assert snapshot() == before


# --- ids ----------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("bad_id", ["not-a-uuid", "%00", "%F0%9F%98%80", "x" * 8000])
def test_malformed_ids_are_404(known_alice: APIClient, started: str, bad_id: str) -> None:
    before = snapshot()
    for response in (
        known_alice.get(f"{BASE}enrollments/{bad_id}/"),
        known_alice.delete(f"{BASE}enrollments/{bad_id}/"),
        known_alice.post(
            f"{BASE}enrollments/{bad_id}/verify/", {"user_code": "123456"}, format="json"
        ),
        known_alice.post(
            f"{BASE}challenge/enrollments/{bad_id}/verify/",
            {"user_code": "123456", "challenge_token": "x"},
            format="json",
        ),
    ):
        if response.status_code == 404 and response["Content-Type"].startswith("text/html"):
            continue  # the URL resolver's own 404 (no route): not one of our endpoints
        assert_documented(response, 404)
    assert snapshot() == before


# --- Authorization headers ----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header",
    [
        "Bearer a b c",
        "Bearer \u00e9\u00e9.\u00e9.\u00e9",  # latin-1, as WSGI delivers it
        "Bearer " + "a" * 20_000,
        "Bearer WyJ4Il0.e30.",  # a JSON array as the JOSE header
        "Bearer bnVsbA.e30.",  # JSON null as the JOSE header
        "Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6WzFdfQ.e30.x",  # kid a list
        "Bearer x, Bearer y",  # duplicated headers joined by a proxy
    ],
    ids=["spaces", "latin-1", "20 kB", "array header", "null header", "kid list", "joined"],
)
def test_malformed_authorization_headers_are_401(pool: Pool, header: str) -> None:
    api = _production(APIClient())
    api.credentials(HTTP_AUTHORIZATION=header)
    before = snapshot()
    with count_cognito_calls() as counter:
        responses = [api.get(BASE + "status/"), api.post(BASE + "enrollments/", {}, format="json")]
    for response in responses:
        assert_documented(response, 401)
    assert counter.calls == []
    assert snapshot() == before


@pytest.mark.django_db
def test_an_id_token_in_the_host_token_header_is_refused(pool: Pool) -> None:
    pool.create_user("alice")
    client = Client(raise_request_exception=False)
    client.force_login(get_user_model().objects.create(username="alice"))
    response = client.get(
        BASE + "status/", HTTP_X_COGNITO_ACCESS_TOKEN=pool.sign_in("alice")["IdToken"]
    )
    assert_documented(response, 401)


# --- the sign-in challenge ----------------------------------------------------------------------

BAD_CHALLENGE_STARTS: dict[str, Any] = {
    "array": [],
    "username number": {"username": 5, "session": "s" * 40},
    "session object": {"username": "alice", "session": {"a": "s" * 40}},
    "session missing": {"username": "alice"},
    "username lone surrogate": {"username": "al\ud800ice", "session": "s" * 40},
    "username RTL override": {"username": "al\u202eice", "session": "s" * 40},
    "username 1 MB": {"username": "a" * 1_000_000, "session": "s" * 40},
    "session NUL": {"username": "alice", "session": "s" * 30 + "\x00"},
}


@pytest.mark.django_db
@pytest.mark.parametrize("case", list(BAD_CHALLENGE_STARTS))
def test_malformed_challenge_starts_are_400(pool: Pool, case: str) -> None:
    before = snapshot()
    with count_cognito_calls() as counter:
        response = _production(APIClient()).post(
            BASE + "challenge/enrollments/",
            data=json.dumps(BAD_CHALLENGE_STARTS[case]),
            content_type="application/json",
        )
    assert_documented(response, 400)
    assert counter.calls == []
    assert snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    "session", ["a b c d e f g h i j k l m n o p", "\u0663" * 30], ids=["spaces", "Arabic digits"]
)
def test_a_challenge_session_cognito_does_not_know_is_a_401(pool: Pool, session: str) -> None:
    pool.create_user("alice", permanent=False)
    before = snapshot()
    response = _production(APIClient()).post(
        BASE + "challenge/enrollments/", {"username": "alice", "session": session}, format="json"
    )
    assert_documented(response, 401, 404)
    assert snapshot() == before


@pytest.fixture
def challenge_enrollment(pool: Pool, settings: Any) -> dict[str, Any]:
    from tests.support.challenge import Spa, configure

    pool.client.set_user_pool_mfa_config(
        UserPoolId=pool.pool_id,
        SoftwareTokenMfaConfiguration={"Enabled": True},
        MfaConfiguration="ON",
    )
    configure(settings, pool)
    pool.create_user("carol", permanent=False)
    session = Spa(pool).reach_mfa_setup("carol")
    response = APIClient().post(
        BASE + "challenge/enrollments/", {"username": "carol", "session": session}, format="json"
    )
    assert response.status_code == 201, response.content
    return dict(response.json())


@pytest.mark.django_db
def test_bad_challenge_tokens_are_4xx_and_change_nothing(
    challenge_enrollment: dict[str, Any],
) -> None:
    bad_tokens: list[Any] = ["\ud800", "ab\x00cd", 5, None, "t" * 1_000_000, "\u202e" * 10]
    before = snapshot()
    with count_cognito_calls() as counter:
        for token in bad_tokens:
            response = _production(APIClient()).post(
                f"{BASE}challenge/enrollments/{challenge_enrollment['id']}/verify/",
                data=json.dumps({"challenge_token": token, "user_code": fresh_code()}),
                content_type="application/json",
            )
            assert_documented(response, 400, 404)
    assert counter.calls == []
    assert snapshot() == before
