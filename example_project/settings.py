"""Settings of the example site.

Point ``COGNITO_MFA_*`` environment variables at a real user pool, or run ``make demo``, which
starts an embedded Cognito (moto) and fills them in.
"""

import os
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-project-insecure-key-change-me")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "cognito_mfa",
    "example_project",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # What a host adds to answer in its users' language (Accept-Language): cognito_mfa ships
    # German and French catalogues and leaves the choice of middleware to the site.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
WSGI_APPLICATION = "example_project.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("EXAMPLE_DB_PATH", str(BASE_DIR / "example.sqlite3")),
        # runserver answers requests in threads: a transaction that takes the write lock at
        # BEGIN waits its turn (up to the timeout) where a deferred one that reads first fails
        # with "database is locked" as it starts to write (two tabs starting at once).
        "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
    }
}

USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cognito_mfa --------------------------------------------------------------------------------
COGNITO_MFA_REGION = os.environ.get("COGNITO_MFA_REGION", "us-east-1")
COGNITO_MFA_USER_POOL_ID = os.environ.get("COGNITO_MFA_USER_POOL_ID", "us-east-1_example")
COGNITO_MFA_APP_CLIENT_IDS = os.environ.get("COGNITO_MFA_APP_CLIENT_IDS", "example-client")
COGNITO_MFA_APP_CLIENT_SECRET = os.environ.get("COGNITO_MFA_APP_CLIENT_SECRET") or None
COGNITO_MFA_ENDPOINT_URL = os.environ.get("COGNITO_MFA_ENDPOINT_URL") or None
COGNITO_MFA_JWKS_URL = os.environ.get("COGNITO_MFA_JWKS_URL") or None
# A development key only: production reads its keys from a secret store.
COGNITO_MFA_ENCRYPTION_KEYS = os.environ.get(
    "COGNITO_MFA_ENCRYPTION_KEYS", "pX9e2hJq0lR8yN4sW7tB1cV6uZ3aD5fG8hK0mP2qS4w="
)
# The site's name, as authenticator apps list it (no host, no port, no colon: see W002).
SITE_NAME = "cognito_mfa demo"
COGNITO_MFA_TOTP_ISSUER = os.environ.get("COGNITO_MFA_TOTP_ISSUER", SITE_NAME)
COGNITO_MFA_ENROLLMENT_TTL = timedelta(minutes=10)
# Answer MFA_SETUP server-side after the device is verified (the demo turns this on).
COGNITO_MFA_CHALLENGE_COMPLETE_AUTH = (
    os.environ.get("COGNITO_MFA_CHALLENGE_COMPLETE_AUTH", "1") == "1"
)

# --- OpenAPI schema at /api/schema/ (optional: pip install 'cognito-mfa[schema]') ---------------
try:
    import drf_spectacular  # noqa: F401
except ImportError:
    HAS_SPECTACULAR = False
else:
    HAS_SPECTACULAR = True
    INSTALLED_APPS.append("drf_spectacular")
    REST_FRAMEWORK = globals().get("REST_FRAMEWORK", {})
    REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] = "drf_spectacular.openapi.AutoSchema"
    SPECTACULAR_SETTINGS = {
        "TITLE": "cognito_mfa",
        "DESCRIPTION": "Amazon Cognito TOTP MFA enrollment.",
        "VERSION": __import__("cognito_mfa").__version__,
        "SERVE_INCLUDE_SCHEMA": False,
        "COMPONENT_SPLIT_REQUEST": True,
    }
