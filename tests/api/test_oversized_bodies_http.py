"""A body over DATA_UPLOAD_MAX_MEMORY_SIZE sent over HTTP to gunicorn: a JSON 413
``request_too_large`` from every endpoint that takes a body, no Cognito call, nothing written.

(A chunked body has no Content-Length, which a WSGI server passes on as none: Django then
reads it as empty, so it never counts as too large.)"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from django.conf import global_settings

from tests.support.cognito import Pool
from tests.support.servers import CountingProxy, served_site
from tests.support.services import require_service

pytestmark = [pytest.mark.multiprocess, pytest.mark.postgres]

# The server runs with Django's default limit (2.5 MiB): one byte more is too much.
LIMIT = global_settings.DATA_UPLOAD_MAX_MEMORY_SIZE


@dataclass
class Server:
    url: str
    database_url: str
    proxy: CountingProxy
    pool: Pool

    def rows(self) -> tuple[Any, ...]:
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return tuple(
                conn.execute(query).fetchall()
                for query in (
                    "SELECT id, status, attempts, verify_lease_until FROM cognito_mfa_enrollment "
                    "ORDER BY id",
                    "SELECT count(*) FROM cognito_mfa_auditevent",
                    "SELECT count(*) FROM cognito_mfa_failurecounter",
                )
            )


@pytest.fixture(scope="module")
def server(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    postgres_url = os.environ.get("COGNITO_MFA_TEST_POSTGRES_URL", "")
    require_service("PostgreSQL", bool(postgres_url), "set COGNITO_MFA_TEST_POSTGRES_URL")
    workdir = tmp_path_factory.mktemp("oversized")
    with served_site(postgres_url, moto_server, workdir, workers=1) as site:
        yield Server(site.url, site.database_url, site.proxy, site.pool)


def _padded(body: dict[str, Any], size: int) -> bytes:
    empty = json.dumps({**body, "padding": ""}).encode()
    return json.dumps({**body, "padding": "x" * (size - len(empty))}).encode()


def test_gunicorn_answers_an_oversized_body_with_a_json_413(server: Server) -> None:
    server.pool.create_user("big", email="big@example.com")
    headers = {
        "Authorization": f"Bearer {server.pool.access_token('big')}",
        "Content-Type": "application/json",
    }
    started = requests.post(f"{server.url}/api/mfa/enrollments/", json={}, headers=headers)
    assert started.status_code == 201, started.text
    paths = {
        "enrollments/": {"friendly_device_name": "phone"},
        f"enrollments/{started.json()['id']}/verify/": {"user_code": "123456"},
        "preference/": {"enabled": False, "preferred": False},
        "challenge/enrollments/": {"username": "big", "session": "s" * 40},
        f"challenge/enrollments/{started.json()['id']}/verify/": {
            "challenge_token": "t" * 43,
            "user_code": "123456",
        },
    }
    before = server.rows()
    server.proxy.reset()
    for path, body in paths.items():
        response = requests.post(
            f"{server.url}/api/mfa/{path}",
            data=_padded(body, LIMIT + 1),
            headers=headers,
            timeout=60,
        )
        assert response.status_code == 413, (path, response.status_code, response.text[:300])
        assert response.headers["Content-Type"] == "application/json"
        assert response.json()["code"] == "request_too_large"
    assert sum(server.proxy.calls.values()) == 0
    assert server.rows() == before
