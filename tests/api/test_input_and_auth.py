"""Malformed bodies and bad access tokens: a stable 4xx, no Cognito call, nothing changed."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from cognito_mfa.models import AuditEvent, Enrollment
from tests.support.cognito import Pool, TestJWKS, count_cognito_calls, fresh_code
from tests.support.tokens import (
    MOTO_KID,
    SigningKey,
    access_claims,
    cached_key,
    hs256_token,
    moto_public_jwks,
    unsigned_token,
)

BASE = "/api/mfa/"

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
# U+FF10..U+FF19, written as escapes so no reader mistakes them for ASCII digits.
FULL_WIDTH = str.maketrans("0123456789", "".join(chr(0xFF10 + digit) for digit in range(10)))


def _row_state(enrollment_id: str) -> dict[str, Any]:
    row = Enrollment.objects.get(pk=enrollment_id)
    return {
        "status": row.status,
        "attempts": row.attempts,
        "credential": bytes(row.encrypted_credential or b""),
        "lease": row.verify_lease_until,
        "finished_at": row.finished_at,
        "friendly_device_name": row.friendly_device_name,
        "audit": AuditEvent.objects.count(),
    }


# Each body is built from the code that is right at this moment, so a validator that let it
# through would hand Cognito a code it accepts: the 400 can only come from our validation.
BAD_VERIFY_BODIES: dict[str, Callable[[str], str]] = {
    "5 digits": lambda code: json.dumps({"user_code": code[:5]}),
    "7 digits": lambda code: json.dumps({"user_code": code + "0"}),
    "letters": lambda code: json.dumps({"user_code": "12a4b6"}),
    "all letters": lambda code: json.dumps({"user_code": "abcdef"}),
    "Arabic-Indic digits": lambda code: json.dumps(
        {"user_code": code.translate(ARABIC_INDIC)}, ensure_ascii=False
    ),
    "Arabic-Indic literal": lambda code: json.dumps({"user_code": "٣٤٥٦٧٨"}, ensure_ascii=False),
    "full-width digits": lambda code: json.dumps(
        {"user_code": code.translate(FULL_WIDTH)}, ensure_ascii=False
    ),
    "full-width literal": lambda code: json.dumps(
        {"user_code": "\uff11\uff12\uff13\uff14\uff15\uff16"}, ensure_ascii=False
    ),
    "surrounding spaces": lambda code: json.dumps({"user_code": f" {code} "}),
    "leading space": lambda code: json.dumps({"user_code": f" {code}"}),
    "trailing newline": lambda code: json.dumps({"user_code": code + "\n"}),
    "null": lambda code: json.dumps({"user_code": None}),
    "JSON number": lambda code: json.dumps({"user_code": 123456}),
    "JSON number of the code": lambda code: '{"user_code": ' + str(int(code)) + "}",
    "float": lambda code: json.dumps({"user_code": 123456.0}),
    "boolean": lambda code: json.dumps({"user_code": True}),
    "list": lambda code: json.dumps({"user_code": [code]}),
    "object": lambda code: json.dumps({"user_code": {"code": code}}),
    "missing": lambda code: json.dumps({"code": code}),
    "JSON array body": lambda code: json.dumps([{"user_code": code}]),
    "JSON string body": lambda code: json.dumps(code),
    "invalid JSON": lambda code: '{"user_code": "' + code + '"',
    "empty body": lambda code: "",
    "JSON null body": lambda code: "null",
    "JSON number body": lambda code: code,
    "deeply nested JSON": lambda code: "[" * 100_000 + "]" * 100_000,
    "deeply nested object": lambda code: '{"user_code": ' * 50_000 + '"1"' + "}" * 50_000,
    "device name not a string": lambda code: json.dumps(
        {"user_code": code, "friendly_device_name": 42}
    ),
    "device name with a control character": lambda code: json.dumps(
        {"user_code": code, "friendly_device_name": "phone\x00"}
    ),
    "device name too long": lambda code: json.dumps(
        {"user_code": code, "friendly_device_name": "x" * 129}
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize("case", list(BAD_VERIFY_BODIES))
def test_malformed_verify_body_is_invalid_without_cognito_or_change(
    alice_api: APIClient, case: str
) -> None:
    started = alice_api.post(BASE + "enrollments/", {}, format="json").json()
    before = _row_state(started["id"])
    body = BAD_VERIFY_BODIES[case](fresh_code())

    with count_cognito_calls() as counter:
        response = alice_api.post(
            f"{BASE}enrollments/{started['id']}/verify/",
            data=body.encode("utf-8"),
            content_type="application/json",
        )

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid"
    assert isinstance(response.json()["detail"], str)
    assert counter.calls == []
    assert counter.sends == []
    assert _row_state(started["id"]) == before
    # The enrollment still works with a well-formed code afterwards.
    ok = alice_api.post(
        f"{BASE}enrollments/{started['id']}/verify/", {"user_code": fresh_code()}, format="json"
    )
    assert ok.status_code == 200


@pytest.mark.django_db
def test_field_errors_are_listed_under_fields(alice_api: APIClient) -> None:
    started = alice_api.post(BASE + "enrollments/", {}, format="json").json()
    response = alice_api.post(
        f"{BASE}enrollments/{started['id']}/verify/", {"user_code": "12"}, format="json"
    )
    assert response.status_code == 400
    assert set(response.json()) == {"code", "detail", "fields"}
    assert list(response.json()["fields"]) == ["user_code"]


BAD_START_BODIES = {
    "device name number": '{"friendly_device_name": 7}',
    "device name list": '{"friendly_device_name": ["a"]}',
    "array body": "[]",
    "invalid JSON": "{",
    "deeply nested JSON": "[" * 100_000 + "]" * 100_000,
}

BAD_PREFERENCE_BODIES = {
    "strings": '{"enabled": "true", "preferred": "true"}',
    "numbers": '{"enabled": 1, "preferred": 0}',
    "null": '{"enabled": null, "preferred": true}',
    "missing": '{"enabled": true}',
    "empty": "",
    "array body": "[true, true]",
    "invalid JSON": "{enabled: true}",
}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "body"),
    [("enrollments/", body) for body in BAD_START_BODIES.values()]
    + [("preference/", body) for body in BAD_PREFERENCE_BODIES.values()],
    ids=[f"start-{name}" for name in BAD_START_BODIES]
    + [f"preference-{name}" for name in BAD_PREFERENCE_BODIES],
)
def test_malformed_start_and_preference_bodies(alice_api: APIClient, path: str, body: str) -> None:
    with count_cognito_calls() as counter:
        response = alice_api.post(BASE + path, data=body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid"
    assert counter.calls == []
    assert Enrollment.objects.count() == 0
    assert AuditEvent.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path", "extra", "expected"),
    [
        ("put", "enrollments/", {}, (405, "method_not_allowed")),
        ("delete", "status/", {}, (405, "method_not_allowed")),
        ("get", "status/", {"HTTP_ACCEPT": "text/html"}, (406, "not_acceptable")),
        (
            "post",
            "enrollments/",
            {"data": "friendly_device_name=x", "content_type": "application/x-www-form-urlencoded"},
            (415, "unsupported_media_type"),
        ),
        ("post", "preference/", {"data": "{}", "content_type": "text/plain"}, (415, None)),
    ],
)
def test_protocol_errors_answer_a_documented_code_and_change_nothing(
    alice_api: APIClient, method: str, path: str, extra: dict[str, Any], expected: Any
) -> None:
    from cognito_mfa.schema import ERRORS

    status, code = expected
    with count_cognito_calls() as counter:
        response = getattr(alice_api, method)(BASE + path, **extra)
    assert response.status_code == status, response.content
    body = json.loads(response.content)
    assert body["code"] in ERRORS
    assert ERRORS[body["code"]][0] == status
    assert code is None or body["code"] == code
    # The client's input is not echoed back.
    assert "text/plain" not in body["detail"]
    assert "PUT" not in body["detail"]
    assert counter.calls == []
    assert Enrollment.objects.count() == 0


# --- access tokens -------------------------------------------------------------------------------


@pytest.fixture
def own_key() -> SigningKey:
    """A key of our own that the pool's JWKS lists next to moto's key."""
    key = cached_key("own", "own-key-1")
    TestJWKS.override = {"keys": [*moto_public_jwks()["keys"], key.jwk]}
    return key


def _claims(pool: Pool, **overrides: Any) -> dict[str, Any]:
    overrides.setdefault("client_id", pool.client_id)
    return access_claims(region="us-east-1", pool_id=pool.pool_id, **overrides)


def _moto_public_pem() -> bytes:
    import jwt

    jwk = next(k for k in moto_public_jwks()["keys"] if k["kid"] == MOTO_KID)
    public_key = jwt.PyJWK(jwk).key
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _bad_tokens(pool: Pool, own: SigningKey) -> dict[str, str | None]:
    stranger = cached_key("stranger", own.kid)  # claims our kid, signed by another key
    unlisted = cached_key("unlisted", "unlisted-kid")
    moto_jwk_json = json.dumps(next(iter(moto_public_jwks()["keys"]))).encode()
    return {
        "missing header": None,
        "empty bearer": "Bearer ",
        "garbage": "Bearer not-a-token",
        "three garbage parts": "Bearer aaa.bbb.ccc",
        "alg none": "Bearer " + unsigned_token(_claims(pool)),
        "alg none with our kid": "Bearer " + unsigned_token(_claims(pool), kid=own.kid),
        "HS256 keyed with the public key PEM": "Bearer "
        + hs256_token(_claims(pool), _moto_public_pem()),
        "HS256 keyed with the public JWK": "Bearer " + hs256_token(_claims(pool), moto_jwk_json),
        "HS256 random secret": "Bearer " + hs256_token(_claims(pool), secrets.token_bytes(32)),
        "ID token": "Bearer " + pool.sign_in("alice")["IdToken"],
        "ID-shaped token": "Bearer "
        + own.sign(_claims(pool, token_use="id", client_id=None, aud=pool.client_id)),
        "wrong client_id": "Bearer " + own.sign(_claims(pool, client_id="another-client")),
        "no client_id": "Bearer " + own.sign(_claims(pool, client_id=None)),
        "wrong issuer": "Bearer "
        + own.sign(_claims(pool, iss="https://cognito-idp.us-east-1.amazonaws.com/other_pool")),
        "expired": "Bearer " + own.sign(_claims(pool, exp=1_600_000_000, iat=1_599_999_000)),
        "no exp": "Bearer " + own.sign(_claims(pool, exp=None)),
        "no username": "Bearer " + own.sign(_claims(pool, username=None)),
        "unknown kid": "Bearer " + unlisted.sign(_claims(pool)),
        "known kid, other key": "Bearer " + stranger.sign(_claims(pool)),
        "no kid": "Bearer " + own.sign(_claims(pool), kid=None),
        "RS512": "Bearer "
        + __import__("jwt").encode(
            _claims(pool), own.private_key, algorithm="RS512", headers={"kid": own.kid}
        ),
        "tampered payload": "Bearer " + _tamper(own.sign(_claims(pool))),
    }


def _tamper(token: str) -> str:
    import base64

    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["username"] = "alice"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


BAD_TOKEN_CASES = [
    "missing header",
    "empty bearer",
    "garbage",
    "three garbage parts",
    "alg none",
    "alg none with our kid",
    "HS256 keyed with the public key PEM",
    "HS256 keyed with the public JWK",
    "HS256 random secret",
    "ID token",
    "ID-shaped token",
    "wrong client_id",
    "no client_id",
    "wrong issuer",
    "expired",
    "no exp",
    "no username",
    "unknown kid",
    "known kid, other key",
    "no kid",
    "RS512",
    "tampered payload",
]


def _assert_refused(response: Any, case: str) -> None:
    assert response.status_code == 401, response.content
    body = response.json()
    expected = "not_authenticated" if case == "missing header" else "token_invalid"
    assert body["code"] == expected
    assert set(body) == {"code", "detail"}
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
@pytest.mark.parametrize("case", BAD_TOKEN_CASES)
def test_bad_tokens_are_refused_with_401(pool: Pool, own_key: SigningKey, case: str) -> None:
    pool.create_user("alice")
    header = _bad_tokens(pool, own_key)[case]
    api = APIClient()
    if header is not None:
        api.credentials(HTTP_AUTHORIZATION=header)
    users_before = get_user_model().objects.count()

    with count_cognito_calls() as counter:
        started = api.post(BASE + "enrollments/", {}, format="json")
        status = api.get(BASE + "status/")

    _assert_refused(started, case)
    _assert_refused(status, case)
    assert counter.calls == []
    assert get_user_model().objects.count() == users_before
    assert Enrollment.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("case", BAD_TOKEN_CASES)
def test_bad_tokens_are_refused_with_401_before_a_spent_call_budget(
    pool: Pool, own_key: SigningKey, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The budget is asked as soon as the token is valid; a bad one never gets that far.
    from cognito_mfa import exceptions as exc
    from cognito_mfa.throttling import CallBudgetThrottle

    def refuse(*_: Any) -> bool:
        raise exc.CallBudgetExhausted(retry_after=5)

    monkeypatch.setattr(CallBudgetThrottle, "allow_request", refuse)
    pool.create_user("alice")
    header = _bad_tokens(pool, own_key)[case]
    api = APIClient()
    if header is not None:
        api.credentials(HTTP_AUTHORIZATION=header)
    _assert_refused(api.post(BASE + "enrollments/", {}, format="json"), case)
    verify = f"{BASE}enrollments/{uuid.uuid4()}/verify/"
    _assert_refused(api.post(verify, {"user_code": "123456"}, format="json"), case)


@pytest.mark.django_db
@pytest.mark.parametrize("case", ["expired", "known kid, other key", "tampered payload"])
def test_a_bad_token_is_checked_once_per_request(
    pool: Pool, own_key: SigningKey, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cognito_mfa import tokens

    checks: list[str] = []
    in_full = tokens._validate_in_full

    def counted(raw: str) -> Any:
        checks.append(case)
        return in_full(raw)

    monkeypatch.setattr(tokens, "_validate_in_full", counted)
    pool.create_user("alice")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=_bad_tokens(pool, own_key)[case])
    _assert_refused(api.post(BASE + "enrollments/", {}, format="json"), case)
    assert len(checks) == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "case", ["missing header", "alg none", "HS256 keyed with the public key PEM"]
)
def test_every_endpoint_refuses_a_bad_token(
    alice_api: APIClient, pool: Pool, own_key: SigningKey, case: str
) -> None:
    enrollment_id = alice_api.post(BASE + "enrollments/", {}, format="json").json()["id"]
    header = _bad_tokens(pool, own_key)[case]
    api = APIClient()
    if header is not None:
        api.credentials(HTTP_AUTHORIZATION=header)
    detail = f"{BASE}enrollments/{enrollment_id}/"
    with count_cognito_calls() as counter:
        answers = [
            api.get(BASE + "status/"),
            api.get(BASE + "enrollments/"),
            api.post(BASE + "enrollments/", {}, format="json"),
            api.get(detail),
            api.delete(detail),
            api.post(detail + "verify/", {"user_code": fresh_code()}, format="json"),
            api.post(BASE + "preference/", {"enabled": False, "preferred": False}, format="json"),
        ]
    for response in answers:
        _assert_refused(response, case)
    assert counter.calls == []
    assert Enrollment.objects.get(pk=enrollment_id).status == "pending"


@pytest.mark.django_db
def test_a_well_formed_token_of_our_own_key_is_accepted(pool: Pool, own_key: SigningKey) -> None:
    """The positive control of the cases above: only the one changed claim makes them fail."""
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION="Bearer " + own_key.sign(_claims(pool)))
    response = api.get(BASE + "enrollments/")
    assert response.status_code == 200, response.content
    assert response.json() == []
    assert get_user_model().objects.filter(username="mallory").exists()


@pytest.mark.django_db
def test_other_authorization_schemes_are_left_alone(alice_api: APIClient, alice: str) -> None:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION="Basic YWxpY2U6cGFzc3dvcmQ=")
    response = api.get(BASE + "status/")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


# --- X-Cognito-Access-Token for hosts with their own sign-in -----------------------------------


@pytest.mark.django_db
def test_host_session_with_the_same_users_token_works(pool: Pool, alice: str) -> None:
    user = get_user_model().objects.create_user("alice")
    api = APIClient()
    api.force_login(user)
    response = api.get(BASE + "status/", HTTP_X_COGNITO_ACCESS_TOKEN=alice)
    assert response.status_code == 200, response.content
    started = api.post(BASE + "enrollments/", {}, format="json", HTTP_X_COGNITO_ACCESS_TOKEN=alice)
    assert started.status_code == 201
    assert Enrollment.objects.get(pk=started.json()["id"]).user == user


@pytest.mark.django_db
def test_host_sign_in_with_its_own_authorization_scheme_and_the_token_works(
    pool: Pool, alice: str
) -> None:
    user = get_user_model().objects.create_user("alice")
    api = APIClient()
    api.force_login(user)
    response = api.get(
        BASE + "status/",
        HTTP_AUTHORIZATION="Basic YWxpY2U6cGFzc3dvcmQ=",
        HTTP_X_COGNITO_ACCESS_TOKEN=alice,
    )
    assert response.status_code == 200, response.content


@pytest.mark.django_db
def test_host_session_with_another_users_token_is_refused(pool: Pool, alice: str) -> None:
    bob = get_user_model().objects.create_user("bob")
    api = APIClient()
    api.force_login(bob)
    with count_cognito_calls() as counter:
        response = api.get(BASE + "status/", HTTP_X_COGNITO_ACCESS_TOKEN=alice)
        started = api.post(
            BASE + "enrollments/", {}, format="json", HTTP_X_COGNITO_ACCESS_TOKEN=alice
        )
    assert response.status_code == started.status_code == 401
    assert response.json()["code"] == "token_invalid"
    assert counter.calls == []
    assert Enrollment.objects.count() == 0


@pytest.mark.django_db
def test_host_token_header_without_a_signed_in_user_is_refused(pool: Pool, alice: str) -> None:
    api = APIClient()
    with count_cognito_calls() as counter:
        response = api.get(BASE + "status/", HTTP_X_COGNITO_ACCESS_TOKEN=alice)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert counter.calls == []
    assert not get_user_model().objects.filter(username="alice").exists()


@pytest.mark.django_db
def test_host_session_without_any_token_is_refused(pool: Pool) -> None:
    api = APIClient()
    api.force_login(get_user_model().objects.create_user("alice"))
    response = api.get(BASE + "status/")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.django_db
def test_host_session_with_a_forged_token_is_refused(pool: Pool, own_key: SigningKey) -> None:
    api = APIClient()
    api.force_login(get_user_model().objects.create_user("mallory"))
    forged = hs256_token(_claims(pool), _moto_public_pem())
    response = api.get(BASE + "status/", HTTP_X_COGNITO_ACCESS_TOKEN=forged)
    assert response.status_code == 401
    assert response.json()["code"] == "token_invalid"
