"""Device names: every script, emoji and inner spaces pass; controls, format characters
(bidi overrides, zero-width spaces, a BOM, stray tag characters), surrogates, private-use
characters and noncharacters are a 400 ``invalid`` naming the field, before Cognito is
called. The API and the admin's verify form share the rule."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from rest_framework.test import APIClient

from cognito_mfa.models import AuditEvent, Enrollment
from cognito_mfa.validators import validate_device_name
from tests.support.admin import make_staff, verify_with_code
from tests.support.cognito import Pool, count_cognito_calls, fresh_code

BASE = "/api/mfa/"

REFUSED = {
    "C0 control": "phone\x07",
    "C1 control NEL": "pho\x85ne",  # at an edge it is whitespace, trimmed away
    "C1 control CSI": "phone\x9b31m",
    "RTL override": "phone\u202eenohp",
    "zero-width space": "pho\u200bne",
    "BOM inside": "pho\ufeffne",
    "soft hyphen": "pho\u00adne",
    "stray tag characters": "phone\U000e0041\U000e0042",
    "lone surrogate": "phone\ud800",
    "private use": "phone\ue000",
    "noncharacter": "phone\U0010fffe",
    "noncharacter in the Arabic block": "pho\ufdd0ne",
    "tag letters without their flag": "phone\U000e0067\U000e0062\U000e007f",
    "flag tag sequence without its cancel tag": "\U0001f3f4\U000e0067\U000e0062 phone",
    "line separator": "pho\u2028ne",
    "joiner at the edge": "\u200dphone",
    "joiners in a run": "pho\u200d\u200dne",
}

ACCEPTED = {
    "Latin with accents": "Téléphone de Zoë",
    "Cyrillic": "Телефон Ивана",
    "Han": "我的手机",
    "Arabic": "هاتف أحمد",
    "Devanagari": "मेरा फ़ोन",
    "Persian with ZWNJ": "گوشی\u200cمن",
    "emoji": "📱 phone",
    "emoji ZWJ sequence": "\U0001f469\u200d\U0001f4bb laptop",
    "flag": "\U0001f1eb\U0001f1f7 phone",
    "keycap": "1\ufe0f\u20e3 phone",
    "no-break space inside": "my\u00a0phone",
    "emoji newer than these Unicode tables": "Phone \U0001fae8",
    "flag of Scotland (tag sequence)": (
        "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f phone"
    ),
}


@pytest.mark.parametrize("name", list(REFUSED.values()), ids=list(REFUSED))
def test_the_validator_refuses_invisible_and_control_characters(name: str) -> None:
    with pytest.raises(ValidationError) as refused:
        validate_device_name(name)
    assert refused.value.code == "invalid"


@pytest.mark.parametrize("name", list(ACCEPTED.values()), ids=list(ACCEPTED))
def test_the_validator_accepts_every_script_emoji_and_spaces(name: str) -> None:
    validate_device_name(name)


def _post(api: APIClient, path: str, body: dict[str, Any]) -> Any:
    # json.dumps writes \u escapes, so even a lone surrogate reaches the server.
    return api.post(BASE + path, data=json.dumps(body), content_type="application/json")


def _assert_refused(response: Any) -> None:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid"
    assert list(body["fields"]) == ["friendly_device_name"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "case", ["C1 control NEL", "RTL override", "zero-width space", "BOM inside", "lone surrogate"]
)
def test_start_refuses_a_bad_device_name_without_calling_cognito(
    alice_api: APIClient, case: str
) -> None:
    with count_cognito_calls() as counter:
        response = _post(alice_api, "enrollments/", {"friendly_device_name": REFUSED[case]})
    _assert_refused(response)
    assert counter.calls == []
    assert Enrollment.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("case", ["C1 control CSI", "RTL override", "lone surrogate"])
def test_verify_refuses_a_bad_device_name_without_calling_cognito(
    alice_api: APIClient, pool: Pool, case: str
) -> None:
    started = alice_api.post(BASE + "enrollments/", {}, format="json").json()
    events = AuditEvent.objects.count()
    body = {"user_code": fresh_code(), "friendly_device_name": REFUSED[case]}
    with count_cognito_calls() as counter:
        response = _post(alice_api, f"enrollments/{started['id']}/verify/", body)
    _assert_refused(response)
    assert counter.calls == []
    row = Enrollment.objects.get(pk=started["id"])
    assert (row.status, row.attempts, row.friendly_device_name) == ("pending", 0, "")
    assert AuditEvent.objects.count() == events
    assert "SOFTWARE_TOKEN_MFA" not in (pool.mfa_state("alice").get("UserMFASettingList") or [])


@pytest.mark.django_db
def test_challenge_start_refuses_a_bad_device_name(pool: Pool) -> None:
    body = {"username": "alice", "session": "s" * 40, "friendly_device_name": "a\u202eb"}
    with count_cognito_calls() as counter:
        response = _post(APIClient(), "challenge/enrollments/", body)
    _assert_refused(response)
    assert counter.calls == []


@pytest.mark.django_db
@pytest.mark.parametrize("case", ["Persian with ZWNJ", "emoji ZWJ sequence", "Han"])
def test_good_names_in_any_script_go_through_to_cognito(alice_api: APIClient, case: str) -> None:
    started = _post(alice_api, "enrollments/", {"friendly_device_name": f"  {ACCEPTED[case]} "})
    assert started.status_code == 201, started.content
    assert started.json()["friendly_device_name"] == ACCEPTED[case]  # only the edges trimmed
    verified = _post(
        alice_api, f"enrollments/{started.json()['id']}/verify/", {"user_code": fresh_code()}
    )
    assert verified.status_code == 200, verified.content
    assert Enrollment.objects.get().friendly_device_name == ACCEPTED[case]


@pytest.mark.django_db
@pytest.mark.parametrize("case", ["C1 control NEL", "RTL override", "zero-width space"])
def test_admin_verify_form_refuses_a_bad_device_name_without_cognito(
    alice_api: APIClient, case: str
) -> None:
    started = alice_api.post(BASE + "enrollments/", {}, format="json").json()
    client = Client()
    client.force_login(make_staff("helpdesk"))
    with count_cognito_calls() as counter:
        response = verify_with_code(
            client, started["id"], user_code=fresh_code(), friendly_device_name=REFUSED[case]
        )
    assert response.status_code == 200  # the form again, with the field's error
    assert "invisible characters" in response.content.decode()
    assert counter.calls == []
    row = Enrollment.objects.get(pk=started["id"])
    assert (row.status, row.attempts) == ("pending", 0)
