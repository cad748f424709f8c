"""One test per system check id of cognito_mfa."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.checks import run_checks

from cognito_mfa.checks import check_jwks_url, check_settings

GOOD_KEY = "Vb4nU5h2q3sWm8yC0dF6gJ9kL1pR7tX2zA4bE6hN8qM="


def ids(messages: list[Any]) -> list[str]:
    return sorted(message.id for message in messages if message.id.startswith("cognito_mfa."))


def test_the_test_settings_pass_every_check() -> None:
    assert ids(run_checks(include_deployment_checks=False)) == []


@pytest.mark.parametrize("value", [None, ""])
def test_e001_region_missing(settings: Any, value: Any) -> None:
    settings.COGNITO_MFA_REGION = value
    assert ids(run_checks()) == ["cognito_mfa.E001"]


def test_e001_when_the_setting_is_absent(settings: Any) -> None:
    del settings.COGNITO_MFA_REGION
    assert ids(check_settings()) == ["cognito_mfa.E001"]


def test_e002_pool_missing(settings: Any) -> None:
    settings.COGNITO_MFA_USER_POOL_ID = ""
    assert ids(run_checks()) == ["cognito_mfa.E002"]


@pytest.mark.parametrize("value", [[], "", None, " , "])
def test_e003_no_client_ids(settings: Any, value: Any) -> None:
    settings.COGNITO_MFA_APP_CLIENT_IDS = value
    assert ids(run_checks()) == ["cognito_mfa.E003"]


def test_client_ids_as_a_comma_separated_string_are_fine(settings: Any) -> None:
    settings.COGNITO_MFA_APP_CLIENT_IDS = "one, two"
    assert ids(run_checks()) == []


@pytest.mark.parametrize("value", [[], "", None])
def test_e004_no_encryption_keys(settings: Any, value: Any) -> None:
    settings.COGNITO_MFA_ENCRYPTION_KEYS = value
    messages = check_settings()
    assert ids(messages) == ["cognito_mfa.E004"]
    assert "Fernet.generate_key" in (messages[0].hint or "")


@pytest.mark.parametrize(
    "bad", ["not-a-key", "c2hvcnQ=", GOOD_KEY[:-2], "x" * 44, GOOD_KEY.replace("=", "")]
)
def test_e005_unusable_fernet_key(settings: Any, bad: str) -> None:
    settings.COGNITO_MFA_ENCRYPTION_KEYS = [GOOD_KEY, bad]
    messages = check_settings()
    assert ids(messages) == ["cognito_mfa.E005"]
    assert "[1]" in messages[0].msg
    assert bad not in messages[0].msg  # a key is a secret, even a broken one


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_ATTEMPTS", 0),
        ("ENROLLMENT_TTL", timedelta(0)),
        ("REAUTH_MAX_AGE", -5),
        ("CONNECT_TIMEOUT", 0),
        ("READ_TIMEOUT", -1),
        ("MAX_RETRY_ATTEMPTS", 0),
        ("CHALLENGE_SESSION_TTL", timedelta(seconds=-1)),
        ("ADMIN_REFRESH_CONCURRENCY", 0),
    ],
)
def test_e006_non_positive_numbers(settings: Any, name: str, value: Any) -> None:
    setattr(settings, f"COGNITO_MFA_{name}", value)
    messages = check_settings()
    assert ids(messages) == ["cognito_mfa.E006"]
    assert name in messages[0].msg


@pytest.mark.parametrize(("name", "value"), [("MAX_ATTEMPTS", "five"), ("READ_TIMEOUT", "soon")])
def test_e006_not_a_number(settings: Any, name: str, value: Any) -> None:
    setattr(settings, f"COGNITO_MFA_{name}", value)
    assert ids(check_settings()) == ["cognito_mfa.E006"]


def test_e007_adapter_cannot_be_imported(settings: Any) -> None:
    settings.COGNITO_MFA_ADAPTER = "nowhere.to.be.Found"
    messages = run_checks()
    assert ids(messages) == ["cognito_mfa.E007"]
    assert "nowhere.to.be.Found" in messages[0].msg


def test_w001_jwks_over_plain_http(settings: Any) -> None:
    settings.COGNITO_MFA_JWKS_URL = "http://keys.example.test/jwks.json"
    assert ids(check_jwks_url()) == ["cognito_mfa.W001"]
    assert ids(run_checks(include_deployment_checks=True)) == ["cognito_mfa.W001"]
    # A deployment check only: a development server on moto is not warned about.
    assert ids(run_checks(include_deployment_checks=False)) == []


def test_w001_not_raised_for_the_derived_https_url(settings: Any) -> None:
    settings.COGNITO_MFA_JWKS_URL = None
    assert ids(check_jwks_url()) == []


def test_many_problems_are_reported_together(settings: Any) -> None:
    settings.COGNITO_MFA_REGION = None
    settings.COGNITO_MFA_USER_POOL_ID = None
    settings.COGNITO_MFA_APP_CLIENT_IDS = []
    settings.COGNITO_MFA_ENCRYPTION_KEYS = []
    assert ids(run_checks()) == [
        "cognito_mfa.E001",
        "cognito_mfa.E002",
        "cognito_mfa.E003",
        "cognito_mfa.E004",
    ]
