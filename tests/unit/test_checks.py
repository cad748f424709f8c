"""One test per system check id of cognito_mfa."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.checks import run_checks

from cognito_mfa.checks import check_jwks_url, check_number, check_settings

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


@pytest.mark.parametrize(
    "value", ["nowhere.to.be.found", "cognito_mfa.cognito.ERROR_MAP", None, "nodots"]
)
def test_e012_client_factory_cannot_be_imported_or_called(settings: Any, value: Any) -> None:
    settings.COGNITO_MFA_CLIENT_FACTORY = value
    messages = run_checks()
    assert ids(messages) == ["cognito_mfa.E012"]
    assert "build_boto3_client" in (messages[0].hint or "")


@pytest.mark.parametrize("value", ["nowhere.to.be.found", "cognito_mfa.tokens.ALLOWED_ALGORITHMS"])
def test_e013_jwks_fetcher_cannot_be_imported_or_called(settings: Any, value: Any) -> None:
    settings.COGNITO_MFA_JWKS_FETCHER = value
    messages = run_checks()
    assert ids(messages) == ["cognito_mfa.E013"]
    assert repr(value) in messages[0].msg


def test_w001_jwks_over_plain_http(settings: Any) -> None:
    settings.COGNITO_MFA_JWKS_URL = "http://keys.example.test/jwks.json"
    assert ids(check_jwks_url()) == ["cognito_mfa.W001"]
    # (W003: the test settings keep the call budget in a per-process cache.)
    assert ids(run_checks(include_deployment_checks=True)) == [
        "cognito_mfa.W001",
        "cognito_mfa.W003",
    ]
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


# --- E006: every number and duration setting ---------------------------------------------------

# (setting, values conf.py cannot read or that are out of range)
BAD_NUMBERS = [
    ("ENROLLMENT_TTL", [0, -1, "ten minutes", None]),
    ("CHALLENGE_SESSION_TTL", [timedelta(0), "3m"]),
    ("REAUTH_MAX_AGE", [timedelta(seconds=-1), [900]]),
    ("RETENTION", [timedelta(0), -86400, "90 days", None, float("nan"), 1e300]),
    ("FAILURE_BACKOFF_BASE", [timedelta(0), -30, "30s"]),
    ("JWKS_CACHE_TTL", [0, timedelta(hours=-6), "six hours", float("inf")]),
    ("JWKS_MIN_REFETCH_INTERVAL", [-5, timedelta(seconds=-1), "5s"]),
    ("JWT_LEEWAY", [-1, timedelta(seconds=-30), "a little"]),
    ("MAX_ATTEMPTS", [0, -3, "five", None]),
    ("FAILURE_BUDGET", [-1, "ten", None]),
    ("FAILURE_HARD_LIMIT", [0, -100, "100 codes", 0.5]),
    ("MAX_RETRY_ATTEMPTS", [0, "three"]),
    ("ADMIN_REFRESH_CONCURRENCY", [0, -8, "eight"]),
    ("UNAVAILABLE_RETRY_AFTER", [0, -5, "soon", None, 0.9]),
    ("CONNECT_TIMEOUT", [0, -2.0, "fast", float("nan")]),
    ("READ_TIMEOUT", [0.0, -1, "slow"]),
    ("CALL_BUDGET_RESERVE", [-0.1, "half", 1.0, float("nan")]),
]

# (setting, values that work at runtime): zero only where it has a meaning.
GOOD_NUMBERS = [
    ("ENROLLMENT_TTL", [timedelta(minutes=10), 600, 0.5, "600"]),
    ("CHALLENGE_SESSION_TTL", [timedelta(minutes=3), 180]),
    ("REAUTH_MAX_AGE", [timedelta(minutes=15), "900"]),
    ("RETENTION", [timedelta(days=90), 86400 * 365, "7776000"]),
    ("FAILURE_BACKOFF_BASE", [timedelta(seconds=30), 1, 0.25]),
    ("JWKS_CACHE_TTL", [timedelta(hours=6), 60]),
    ("JWKS_MIN_REFETCH_INTERVAL", [timedelta(0), 0, 5, timedelta(seconds=30)]),
    ("JWT_LEEWAY", [timedelta(0), 0, 30, "30"]),
    ("MAX_ATTEMPTS", [1, 5, "5"]),
    ("FAILURE_BUDGET", [0, 10, "10", 1_000_000]),
    ("FAILURE_HARD_LIMIT", [1, 100, "100"]),
    ("MAX_RETRY_ATTEMPTS", [1, 3]),
    ("ADMIN_REFRESH_CONCURRENCY", [1, 8]),
    ("UNAVAILABLE_RETRY_AFTER", [1, 5, "5"]),
    ("CONNECT_TIMEOUT", [0.1, 2, "2.5"]),
    ("READ_TIMEOUT", [5.0, "5"]),
    ("CALL_BUDGET_RESERVE", [0, 0.5, "0.25"]),
]


@pytest.mark.parametrize(
    ("name", "value"), [(name, value) for name, values in BAD_NUMBERS for value in values]
)
def test_e006_each_bad_number_is_named(settings: Any, name: str, value: Any) -> None:
    setattr(settings, f"COGNITO_MFA_{name}", value)
    messages = run_checks()
    assert ids(messages) == ["cognito_mfa.E006"]
    assert f"COGNITO_MFA_{name} " in messages[0].msg
    assert "got " in messages[0].msg
    assert "the default" in (messages[0].hint or "")


@pytest.mark.parametrize(
    ("name", "value"), [(name, value) for name, values in GOOD_NUMBERS for value in values]
)
def test_good_numbers_pass(settings: Any, name: str, value: Any) -> None:
    setattr(settings, f"COGNITO_MFA_{name}", value)
    assert ids(run_checks()) == []


def test_every_number_setting_of_conf_is_checked() -> None:
    from cognito_mfa import checks
    from cognito_mfa.conf import AppSettings

    numeric = {
        name
        for name, member in vars(AppSettings).items()
        if isinstance(member, property)
        and member.fget is not None
        and member.fget.__annotations__.get("return") in ("timedelta", "int", "float")
    }
    assert numeric == set(checks._NUMBERS)
    assert {name for name, _ in BAD_NUMBERS} == numeric
    assert {name for name, _ in GOOD_NUMBERS} == numeric


def test_e006_the_defaults_pass(settings: Any) -> None:
    for name, _ in BAD_NUMBERS:
        if hasattr(settings, f"COGNITO_MFA_{name}"):
            delattr(settings, f"COGNITO_MFA_{name}")
    assert ids(run_checks()) == []


def test_e006_every_bad_number_is_reported_at_once(settings: Any) -> None:
    for name, values in BAD_NUMBERS:
        setattr(settings, f"COGNITO_MFA_{name}", values[0])
    messages = check_settings()
    assert ids(messages) == ["cognito_mfa.E006"] * len(BAD_NUMBERS)
    assert {message.msg.split()[0] for message in messages} == {
        f"COGNITO_MFA_{name}" for name, _ in BAD_NUMBERS
    }


# --- E009: throttle rates, parsed the way DRF parses them on each request ---------------------

BAD_RATES = ["lots", "", "5", "5/", "5/x", "/hour", "5.5/hour", "5 per hour", "5/ hour", "1/2/h"]
BAD_RATE_OBJECTS = [5, 5.0, ["5", "hour"], {"num": 5}, b"5/hour"]
GOOD_RATES = [None, "1/s", "20/hour", "60/min", "100/day", "3/m", " 7/h"]


@pytest.mark.parametrize("rate", BAD_RATES + BAD_RATE_OBJECTS)
@pytest.mark.parametrize("scope", ["start", "verify", "challenge"])
def test_e009_a_rate_drf_cannot_parse(settings: Any, scope: str, rate: Any) -> None:
    settings.COGNITO_MFA_THROTTLE_RATES = {scope: rate}
    messages = run_checks()
    assert ids(messages) == ["cognito_mfa.E009"]
    assert f"COGNITO_MFA_THROTTLE_RATES[{scope!r}]" in messages[0].msg
    assert "None turns" in (messages[0].hint or "")


@pytest.mark.parametrize("rate", BAD_RATES + BAD_RATE_OBJECTS)
def test_the_rates_e009_rejects_break_the_throttle_at_runtime(settings: Any, rate: Any) -> None:
    """The check parses like the throttle: what it rejects is what would answer 500."""
    from cognito_mfa.throttling import StartThrottle

    settings.COGNITO_MFA_THROTTLE_RATES = {"start": rate}
    with pytest.raises((ValueError, TypeError, KeyError, IndexError, AttributeError)):
        StartThrottle()


@pytest.mark.parametrize("rate", ["0/hour", "-1/min", "-20/h"])
def test_e009_a_rate_that_lets_no_request_through(settings: Any, rate: str) -> None:
    # DRF accepts it, but it answers 429 to every request: None is how a scope is turned off.
    settings.COGNITO_MFA_THROTTLE_RATES = {"verify": rate}
    messages = check_settings()
    assert ids(messages) == ["cognito_mfa.E009"]
    assert "'verify'" in messages[0].msg


@pytest.mark.parametrize("rate", GOOD_RATES)
def test_good_rates_pass_and_parse(settings: Any, rate: Any) -> None:
    from cognito_mfa.throttling import ChallengeThrottle, StartThrottle, VerifyThrottle

    settings.COGNITO_MFA_THROTTLE_RATES = {"start": rate, "verify": rate, "challenge": rate}
    assert ids(run_checks()) == []
    for throttle_class in (StartThrottle, VerifyThrottle, ChallengeThrottle):
        throttle_class()


@pytest.mark.parametrize(
    "rates", [{}, {"challenge": "2/min"}, {"start": None, "verify": None, "challenge": None}]
)
def test_partial_or_empty_rates_fall_back_to_the_defaults(settings: Any, rates: Any) -> None:
    settings.COGNITO_MFA_THROTTLE_RATES = rates
    assert ids(run_checks()) == []


def test_the_default_rates_pass(settings: Any) -> None:
    del settings.COGNITO_MFA_THROTTLE_RATES
    assert ids(run_checks()) == []


@pytest.mark.parametrize("scope", ["enroll", "Start", "verification", 1, None])
def test_e009_unknown_scope(settings: Any, scope: Any) -> None:
    settings.COGNITO_MFA_THROTTLE_RATES = {scope: "5/hour"}
    messages = check_settings()
    assert ids(messages) == ["cognito_mfa.E009"]
    assert "unknown scope" in messages[0].msg
    assert repr(scope) in messages[0].msg
    assert "'start', 'verify', 'challenge'" in (messages[0].hint or "")


@pytest.mark.parametrize("rates", [None, "20/hour", [("start", "20/hour")], 20])
def test_e009_rates_not_a_dict(settings: Any, rates: Any) -> None:
    settings.COGNITO_MFA_THROTTLE_RATES = rates
    messages = check_settings()
    assert ids(messages) == ["cognito_mfa.E009"]
    assert "must be a dict" in messages[0].msg


def test_e009_each_bad_scope_is_reported(settings: Any) -> None:
    settings.COGNITO_MFA_THROTTLE_RATES = {
        "start": "lots",
        "verify": None,
        "challenge": "0/min",
        "enrol": "1/s",
    }
    messages = check_settings()
    assert ids(messages) == ["cognito_mfa.E009"] * 3
    text = " ".join(message.msg for message in messages)
    for named in ("'start'", "'challenge'", "'enrol'"):
        assert named in text
    assert "'verify'" not in text


@pytest.mark.django_db
def test_the_rate_that_answered_500_is_now_caught_at_check_time(
    settings: Any, alice_api: Any
) -> None:
    settings.COGNITO_MFA_THROTTLE_RATES = {"start": "lots"}
    assert ids(run_checks()) == ["cognito_mfa.E009"]
    # What the check prevents: the enrollment endpoint cannot even build its throttle.
    with pytest.raises(ValueError):
        alice_api.post("/api/mfa/enrollments/", {}, format="json")


# --- E010: the throttle cache ----------------------------------------------------------------


@pytest.mark.parametrize("alias", ["throttles", "", None, 0, "Default"])
def test_e010_throttle_cache_not_in_caches(settings: Any, alias: Any) -> None:
    settings.COGNITO_MFA_THROTTLE_CACHE = alias
    messages = run_checks()
    assert ids(messages) == ["cognito_mfa.E010"]
    assert "COGNITO_MFA_THROTTLE_CACHE" in messages[0].msg
    assert "'default'" in (messages[0].hint or "")


def test_throttle_cache_naming_a_configured_cache_passes(settings: Any) -> None:
    settings.CACHES = {
        **settings.CACHES,
        "throttles": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    settings.COGNITO_MFA_THROTTLE_CACHE = "throttles"
    assert ids(run_checks()) == []


def test_throttle_cache_default_passes(settings: Any) -> None:
    if hasattr(settings, "COGNITO_MFA_THROTTLE_CACHE"):
        del settings.COGNITO_MFA_THROTTLE_CACHE
    assert ids(run_checks()) == []


# --- settings of the wrong shape are reported, never crash the checks ------------------------


def test_e003_client_ids_of_the_wrong_type(settings: Any) -> None:
    settings.COGNITO_MFA_APP_CLIENT_IDS = 5
    messages = check_settings()
    assert ids(messages) == ["cognito_mfa.E003"]
    assert "neither a list nor" in messages[0].msg


@pytest.mark.parametrize("value", [5, 1.5, True])
def test_e005_keys_of_the_wrong_type(settings: Any, value: Any) -> None:
    settings.COGNITO_MFA_ENCRYPTION_KEYS = value
    messages = check_settings()
    assert ids(messages) == ["cognito_mfa.E005"]
    assert repr(value) not in messages[0].msg


@pytest.mark.parametrize("value", [5, None, "nodots", "cognito_mfa.adapter.Nothing"])
def test_e007_adapter_of_the_wrong_type(settings: Any, value: Any) -> None:
    settings.COGNITO_MFA_ADAPTER = value
    messages = check_settings()
    assert ids(messages) == ["cognito_mfa.E007"]
    assert "DefaultAdapter" in (messages[0].hint or "")


def test_no_message_echoes_a_secret(settings: Any) -> None:
    secret = "s3cr3t-client-secret-value"
    settings.COGNITO_MFA_APP_CLIENT_SECRET = secret
    settings.COGNITO_MFA_ENCRYPTION_KEYS = [GOOD_KEY, "broken-" + secret]
    for name, values in BAD_NUMBERS:
        setattr(settings, f"COGNITO_MFA_{name}", values[0])
    settings.COGNITO_MFA_THROTTLE_RATES = {"start": "lots", "bogus": None}
    settings.COGNITO_MFA_THROTTLE_CACHE = "missing"
    messages = run_checks(include_deployment_checks=True)
    assert len(messages) > len(BAD_NUMBERS)
    for message in messages:
        text = f"{message.msg} {message.hint}"
        assert secret not in text
        assert GOOD_KEY not in text


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("READ_TIMEOUT", float("inf")),
        ("CONNECT_TIMEOUT", 1e14),
        ("MAX_RETRY_ATTEMPTS", 10**12),
        ("RETENTION", timedelta(days=365 * 100)),
    ],
)
def test_e006_refuses_values_the_date_arithmetic_cannot_hold(
    settings: Any, name: str, value: Any
) -> None:
    """A verify's lease is (connect + read timeout) x attempts: infinite or astronomic values
    would make every start and verify fail."""
    setattr(settings, f"COGNITO_MFA_{name}", value)
    (problem,) = check_number(name)
    assert problem.id == "cognito_mfa.E006"
    assert "at most" in problem.msg
