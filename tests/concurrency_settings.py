"""Settings of the server processes started by the multi-process tests (gunicorn workers).

Everything the test decides (database, Cognito stand-in, pool, limits, shared cache) comes in
through ``CMFA_SERVER_*`` environment variables.
"""

import json
import os

from example_project.database_url import postgres_database
from tests.settings import *  # noqa: F403

DATABASES = {"default": postgres_database(os.environ["CMFA_SERVER_DATABASE_URL"])}
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "tests.concurrency_urls"

COGNITO_MFA_ENDPOINT_URL = os.environ.get("CMFA_SERVER_ENDPOINT_URL")
COGNITO_MFA_JWKS_URL = os.environ.get("CMFA_SERVER_JWKS_URL")
COGNITO_MFA_USER_POOL_ID = os.environ.get("CMFA_SERVER_POOL_ID", "us-east-1_placeholder")
COGNITO_MFA_APP_CLIENT_IDS = [os.environ.get("CMFA_SERVER_CLIENT_ID", "placeholder")]
COGNITO_MFA_MAX_ATTEMPTS = int(os.environ.get("CMFA_SERVER_MAX_ATTEMPTS", "5"))

_redis_url = os.environ.get("CMFA_SERVER_REDIS_URL")
if _redis_url:
    # The throttles' shared cache: every process counts in the same place.
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "throttles": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": _redis_url,
            "KEY_PREFIX": os.environ.get("CMFA_SERVER_REDIS_PREFIX", "cmfa"),
        },
    }
    COGNITO_MFA_THROTTLE_CACHE = "throttles"
if os.environ.get("CMFA_SERVER_THROTTLE_RATES"):
    COGNITO_MFA_THROTTLE_RATES = json.loads(os.environ["CMFA_SERVER_THROTTLE_RATES"])
