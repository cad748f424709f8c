"""Settings for the test suite: SQLite, or PostgreSQL when COGNITO_MFA_TEST_DATABASE_URL is set."""

import os

from example_project.database_url import postgres_database
from example_project.settings import *  # noqa: F403

SECRET_KEY = "tests-only-secret-key"
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

_database_url = os.environ.get("COGNITO_MFA_TEST_DATABASE_URL")
if _database_url:
    DATABASES = {
        "default": postgres_database(
            _database_url,
            default_name="cognito_mfa",
            TEST={"NAME": os.environ.get("COGNITO_MFA_TEST_DB_NAME", "test_cognito_mfa")},
        )
    }
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Every call is charged, but the budget never bites a test that is not about it (fuzzing and
# the concurrency tests start faster than a site's 20/s); tests/unit/test_call_budget.py sets it.
COGNITO_MFA_CALL_BUDGET_RATES = {
    "UserResourceUpdate": 10_000,
    "UserRead": 10_000,
    "UserAuthentication": 10_000,
}

COGNITO_MFA_REGION = "us-east-1"
COGNITO_MFA_USER_POOL_ID = "us-east-1_placeholder"
COGNITO_MFA_APP_CLIENT_IDS = ["placeholder"]
COGNITO_MFA_APP_CLIENT_SECRET = None
COGNITO_MFA_ENDPOINT_URL = None
COGNITO_MFA_JWKS_URL = None
COGNITO_MFA_ENCRYPTION_KEYS = ["Vb4nU5h2q3sWm8yC0dF6gJ9kL1pR7tX2zA4bE6hN8qM="]
COGNITO_MFA_TOTP_ISSUER = "Example Site"
COGNITO_MFA_ADAPTER = "tests.support.cognito.TestAdapter"
COGNITO_MFA_JWKS_FETCHER = "tests.support.cognito.fetch_test_jwks"
# Throttles are exercised by their own tests; elsewhere they would only add noise.
COGNITO_MFA_THROTTLE_RATES = {
    "start": None,
    "verify": None,
    "challenge": None,
    "preference": None,
    "status": None,
}
