"""Settings of the benchmark: the example site's, with the bench URLconf and counting seams.

``COGNITO_MFA_BENCH_DATABASE`` is a SQLite file path or a ``postgres://`` URL;
``COGNITO_MFA_ENDPOINT_URL`` points at the Cognito stub.
"""

import json
import os

from bench.support import CLIENT_ID, POOL_ID, REGION
from example_project.database_url import postgres_database
from example_project.settings import *  # noqa: F403

DEBUG = False
SECRET_KEY = "bench-only-secret-key"
ROOT_URLCONF = "bench.urls"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

_database = os.environ.get("COGNITO_MFA_BENCH_DATABASE", "/tmp/cognito-mfa-bench.sqlite3")
if _database.startswith(("postgres://", "postgresql://")):
    # Persistent connections, as a production site runs: both the app and the baseline are
    # served by the same workers, only the app uses the database.
    DATABASES = {"default": postgres_database(_database, CONN_MAX_AGE=60)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _database,
            # WAL with synchronous=NORMAL, as SQLite runs in production: in the default
            # rollback-journal mode every commit is an fsync (~10 ms on this VM's disk),
            # which would measure the disk rather than the app.
            "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"},
        }
    }

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
if os.environ.get("COGNITO_MFA_BENCH_REDIS_URL"):
    # The storm: throttles and the call budget shared by both server processes.
    CACHES["shared"] = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ["COGNITO_MFA_BENCH_REDIS_URL"],
        "KEY_PREFIX": os.environ.get("COGNITO_MFA_BENCH_REDIS_PREFIX", "bench"),
    }
    COGNITO_MFA_THROTTLE_CACHE = "shared"
# Every call is charged (its cost is part of the app's), but outside the storm the budget
# never bites: the phases measure the app's overhead, not Cognito's quota.
COGNITO_MFA_CALL_BUDGET_RATES = json.loads(
    os.environ.get("COGNITO_MFA_BENCH_CALL_BUDGET")
    or '{"UserResourceUpdate": 1e9, "UserRead": 1e9, "UserAuthentication": 1e9}'
)
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "ERROR"}}

COGNITO_MFA_REGION = REGION
COGNITO_MFA_USER_POOL_ID = POOL_ID
COGNITO_MFA_APP_CLIENT_IDS = [CLIENT_ID]
COGNITO_MFA_APP_CLIENT_SECRET = None
COGNITO_MFA_ENDPOINT_URL = os.environ.get("COGNITO_MFA_ENDPOINT_URL", "http://127.0.0.1:9")
COGNITO_MFA_JWKS_URL = "https://bench.invalid/jwks.json"  # served by the fetcher below
COGNITO_MFA_CLIENT_FACTORY = "bench.support.build_counted_boto3_client"
COGNITO_MFA_JWKS_FETCHER = "bench.support.fetch_bench_jwks"
COGNITO_MFA_TOTP_ISSUER = "Bench Site"
# The throttles run (their cost is part of the app's) but never bite a benchmark user.
COGNITO_MFA_THROTTLE_RATES = {"start": "100000/hour", "verify": "100000/hour"}
