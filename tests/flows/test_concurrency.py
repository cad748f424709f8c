"""Exact-once under real concurrency: gunicorn (4 sync workers) on PostgreSQL, real commits,
requests released together, Cognito calls counted where they arrive (a proxy before moto)."""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.cognito import Pool, wrong_code
from tests.support.servers import (
    CountingProxy,
    code_with_margin,
    fire_together,
    read_signal_log,
    served_site,
)
from tests.support.services import require_service

pytestmark = [pytest.mark.multiprocess, pytest.mark.postgres]

MAX_ATTEMPTS = 5


@dataclass
class Site:
    url: str
    database_url: str
    proxy: CountingProxy
    pool: Pool
    signal_log: Path

    def api(self, path: str) -> str:
        return f"{self.url}/api/mfa/{path}"

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return conn.execute(query, params).fetchall()

    def new_user(self) -> tuple[str, dict[str, str]]:
        username = f"conc-{secrets.token_hex(4)}"
        self.pool.create_user(username, email=f"{username}@example.com")
        return username, {"Authorization": f"Bearer {self.pool.access_token(username)}"}

    def fire_verifies(
        self, count: int, enrollment_id: str, code: str, headers: dict[str, str]
    ) -> list[requests.Response]:
        """Send ``count`` verifies of one enrollment at once (released by a barrier)."""
        return fire_together(
            count,
            lambda _: requests.post(
                self.api(f"enrollments/{enrollment_id}/verify/"),
                json={"user_code": code},
                headers=headers,
                timeout=60,
            ),
        )

    def start(self, headers: dict[str, str]) -> dict[str, Any]:
        response = requests.post(self.api("enrollments/"), json={}, headers=headers, timeout=30)
        assert response.status_code == 201, response.text
        return response.json()

    def signals(self, name: str, enrollment_id: str | None = None) -> int:
        return sum(
            1
            for entry in read_signal_log(self.signal_log)
            if entry["signal"] == name
            and (enrollment_id is None or entry["enrollment"] == enrollment_id)
        )


@pytest.fixture(scope="module")
def shared_site(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    postgres_url = os.environ.get("COGNITO_MFA_TEST_POSTGRES_URL", "")
    require_service("PostgreSQL", bool(postgres_url), "set COGNITO_MFA_TEST_POSTGRES_URL")
    workdir = tmp_path_factory.mktemp("concurrency")
    signal_log = workdir / "signals.jsonl"
    with served_site(
        postgres_url,
        moto_server,
        workdir,
        workers=4,
        CMFA_SERVER_MAX_ATTEMPTS=str(MAX_ATTEMPTS),
        CMFA_SERVER_SIGNAL_LOG=str(signal_log),
    ) as served:
        yield Site(served.url, served.database_url, served.proxy, served.pool, signal_log)


@pytest.fixture
def site(shared_site: Site) -> Site:
    """The module's site, its Cognito call counts set back to zero."""
    shared_site.proxy.reset()
    return shared_site


def test_twenty_verifies_with_the_right_code_succeed_once(site: Site) -> None:
    _, headers = site.new_user()
    enrollment_id = site.start(headers)["id"]
    site.proxy.reset()
    code = code_with_margin()

    responses = site.fire_verifies(20, enrollment_id, code, headers)

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 1, 409: 19}, [r.text for r in responses]
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {
        "enrollment_not_pending"
    }
    assert site.proxy.count("VerifySoftwareToken") == 1
    assert site.proxy.count("SetUserMFAPreference") == 1
    assert site.sql(
        "SELECT count(*) FROM cognito_mfa_auditevent WHERE enrollment_id = %s AND kind = %s",
        enrollment_id,
        "verified",
    ) == [(1,)]
    assert site.signals("software_token_verified", enrollment_id) == 1
    assert site.sql(
        "SELECT status, encrypted_credential IS NULL FROM cognito_mfa_enrollment WHERE id = %s",
        enrollment_id,
    ) == [("verified", True)]


def test_fifty_wrong_codes_lock_after_the_cap(site: Site) -> None:
    _, headers = site.new_user()
    enrollment_id = site.start(headers)["id"]
    site.proxy.reset()
    code = wrong_code()

    responses = site.fire_verifies(50, enrollment_id, code, headers)

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {400: MAX_ATTEMPTS, 409: 50 - MAX_ATTEMPTS}, [r.text for r in responses]
    assert sorted(r.json()["attempts_remaining"] for r in responses if r.status_code == 400) == [
        0,
        1,
        2,
        3,
        4,
    ]
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"enrollment_locked"}
    # No request after the fifth reached Cognito.
    assert site.proxy.count("VerifySoftwareToken") == MAX_ATTEMPTS
    assert site.sql(
        "SELECT attempts, status, encrypted_credential IS NULL"
        " FROM cognito_mfa_enrollment WHERE id = %s",
        enrollment_id,
    ) == [(MAX_ATTEMPTS, "locked", True)]
    assert site.signals("verification_failed", enrollment_id) == MAX_ATTEMPTS
    assert site.signals("enrollment_locked", enrollment_id) == 1


def test_ten_starts_for_one_user_leave_one_pending(site: Site) -> None:
    username, headers = site.new_user()

    responses = fire_together(
        10,
        lambda _: requests.post(site.api("enrollments/"), json={}, headers=headers, timeout=60),
    )

    # A start whose key request crossed another's asks again (each AssociateSoftwareToken
    # replaces the key); one that keeps crossing answers 409, try again, and writes nothing.
    started = [r for r in responses if r.status_code == 201]
    refused = [r for r in responses if r.status_code != 201]
    assert started, [r.text for r in responses]
    assert all(
        r.status_code == 409 and r.json()["code"] == "enrollment_not_pending" for r in refused
    ), [r.text for r in refused]
    ids = {r.json()["id"] for r in started}
    rows = dict(
        site.sql(
            "SELECT status, count(*) FROM cognito_mfa_enrollment"
            " WHERE cognito_username = %s GROUP BY status",
            username,
        )
    )
    expected = {"pending": 1, "cancelled": len(started) - 1}
    assert rows == {status: count for status, count in expected.items() if count}
    (pending_id,) = site.sql(
        "SELECT id::text FROM cognito_mfa_enrollment WHERE cognito_username = %s"
        " AND status = 'pending'",
        username,
    )[0]
    assert pending_id in ids
    assert site.signals("enrollment_started") >= len(started)
    assert 10 <= site.proxy.count("AssociateSoftwareToken") <= 10 * 3


def _can_lock_now(site: Site, table: str, key: str) -> bool:
    """Take and drop a row lock without waiting: True if nobody else holds one."""
    import psycopg

    with psycopg.connect(site.database_url) as conn:
        try:
            conn.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR UPDATE NOWAIT", (key,))
        except psycopg.errors.LockNotAvailable:
            return False
        finally:
            conn.rollback()
    return True


def _wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


def test_no_database_lock_is_held_while_cognito_is_called(site: Site) -> None:
    username, headers = site.new_user()
    site.proxy.delays["AssociateSoftwareToken"] = 1.0
    results: list[requests.Response] = []

    def call(method: str, path: str, body: dict[str, Any]) -> threading.Thread:
        thread = threading.Thread(
            target=lambda: results.append(
                requests.request(method, site.api(path), json=body, headers=headers, timeout=60)
            )
        )
        thread.start()
        return thread

    # Starting: the user row serialises starts, but only around the database work.
    thread = call("POST", "enrollments/", {})
    _wait_for(lambda: site.proxy.waiting("AssociateSoftwareToken") == 1)
    ((user_id,),) = site.sql("SELECT id::text FROM auth_user WHERE username = %s", username)
    assert _can_lock_now(site, "auth_user", user_id)
    thread.join()
    assert results.pop().status_code == 201

    # Verifying: the lease is taken and committed, Cognito is answering, and no row is locked.
    (enrollment_id,) = site.sql(
        "SELECT id::text FROM cognito_mfa_enrollment WHERE cognito_username = %s", username
    )[0]
    site.proxy.delays["VerifySoftwareToken"] = 1.0
    thread = call("POST", f"enrollments/{enrollment_id}/verify/", {"user_code": code_with_margin()})
    _wait_for(lambda: site.proxy.waiting("VerifySoftwareToken") == 1)
    ((lease,),) = site.sql(
        "SELECT verify_lease_until FROM cognito_mfa_enrollment WHERE id = %s", enrollment_id
    )
    assert lease is not None
    assert _can_lock_now(site, "cognito_mfa_enrollment", enrollment_id)
    assert _can_lock_now(site, "auth_user", user_id)
    thread.join()
    assert results.pop().status_code == 200


def test_hard_failure_limit_holds_under_concurrency(site: Site) -> None:
    username, headers = site.new_user()
    enrollment_id = site.start(headers)["id"]
    # One wrong code away from the hard limit (100 by default).
    site.sql(
        "INSERT INTO cognito_mfa_failurecounter"
        " (cognito_username, consecutive_failures, blocked_until, updated_at)"
        " VALUES (%s, 99, NULL, now()) RETURNING 1",
        username,
    )
    site.proxy.reset()
    code = wrong_code()

    responses = site.fire_verifies(10, enrollment_id, code, headers)

    assert Counter(r.status_code for r in responses) == {400: 1, 429: 9}
    assert all("Retry-After" in r.headers for r in responses if r.status_code == 429)
    assert site.proxy.count("VerifySoftwareToken") == 1
    assert site.sql(
        "SELECT consecutive_failures FROM cognito_mfa_failurecounter WHERE cognito_username = %s",
        username,
    ) == [(100,)]
