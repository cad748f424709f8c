"""The OpenAPI schema: served at ``/api/schema/``, and a soft dependency (the app works without
drf-spectacular)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db


def test_schema_is_served_at_api_schema(client: Any) -> None:
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert "/api/mfa/enrollments/{enrollment_id}/verify/" in document["paths"]


_WITHOUT_SPECTACULAR = """
import json, sys
sys.modules["drf_spectacular"] = None  # any import of it now raises ImportError
import django
django.setup()
from django.conf import settings
from django.test import Client
import cognito_mfa.views, cognito_mfa.schema
client = Client()
print(json.dumps({
    "has_spectacular": cognito_mfa.schema.HAS_SPECTACULAR,
    "installed": "drf_spectacular" in settings.INSTALLED_APPS,
    "status": client.get("/api/mfa/status/").status_code,
    "body": client.get("/api/mfa/status/").json(),
    "schema": client.get("/api/schema/").status_code,
}))
"""


def test_the_app_works_without_drf_spectacular() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        "EXAMPLE_DB_PATH": ":memory:",
    }
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_SPECTACULAR],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == {
        "has_spectacular": False,
        "installed": False,
        "status": 401,
        "body": {"code": "not_authenticated", "detail": "A Cognito access token is required."},
        "schema": 404,
    }
