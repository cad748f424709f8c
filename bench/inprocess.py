"""Measurements that drive the app inside one process (run by ``bench/run.py``).

``python -m bench.inprocess overhead`` — app vs baseline per request, SQL queries per
endpoint, QR rendering and the admin refresh, on the database named by
``COGNITO_MFA_BENCH_DATABASE``; ``python -m bench.inprocess wait`` — the same interleaved
requests with the stub answering each Cognito call in 20 ms (the wait ratios);
``python -m bench.inprocess cold`` — import and first-request
times of a fresh process. Each prints one JSON object on stdout.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.stats import summary
from bench.stub import CognitoStub
from bench.support import JWKS_ENV, SigningKey

OVERHEAD_ITERATIONS = int(os.environ.get("COGNITO_MFA_BENCH_ITERATIONS", "300"))
WARMUP = 30
LISTED_ROWS = 200
REFRESH_USERS = 500
REFRESH_SERVICE_TIME = 0.020  # seconds per AdminGetUser, like a remote Cognito
# The wait ratios: every call the start and verify make served in 20 ms, like a remote Cognito.
WAIT_ITERATIONS = int(os.environ.get("COGNITO_MFA_BENCH_WAIT_ITERATIONS", "200"))
WAIT_SERVICE_TIME = 0.020
WAIT_OPERATIONS = (
    "GetUser",
    "AssociateSoftwareToken",
    "VerifySoftwareToken",
    "SetUserMFAPreference",
)
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")


def _setup(stub_url: str, key: SigningKey) -> None:
    os.environ["COGNITO_MFA_ENDPOINT_URL"] = stub_url
    os.environ[JWKS_ENV] = json.dumps(key.jwks())
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    import django

    django.setup()


def _migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


class Driver:
    """One SPA user's requests through the Django test client (the full middleware stack)."""

    def __init__(self, token: str) -> None:
        from django.test import Client

        self.client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")

    def _post(self, path: str, body: dict[str, Any], expected: int) -> Any:
        response = self.client.post(path, body, content_type="application/json")
        assert response.status_code == expected, (path, response.status_code, response.content)
        return response.json()

    def app_start(self, **extra: Any) -> str:
        body = self._post("/api/mfa/enrollments/", {"friendly_device_name": "phone"}, 201)
        return str(body["id"])

    def app_verify(self, enrollment_id: str) -> None:
        body = self._post(f"/api/mfa/enrollments/{enrollment_id}/verify/", _CODE, 200)
        assert body["status"] == "verified"

    def base_start(self) -> str:
        body = self._post("/baseline/enrollments/", {"friendly_device_name": "phone"}, 201)
        return str(body["id"])

    def base_verify(self, enrollment_id: str) -> None:
        self._post(f"/baseline/enrollments/{enrollment_id}/verify/", _CODE, 200)

    def get(self, path: str) -> Any:
        response = self.client.get(path)
        assert response.status_code == 200, (path, response.status_code, response.content)
        return response.json()

    def delete(self, path: str) -> None:
        response = self.client.delete(path)
        assert response.status_code == 204, (path, response.status_code, response.content)


_CODE = {"user_code": "123456"}


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return (time.perf_counter() - started) * 1000, result


def measure_overhead(driver: Driver, iterations: int = OVERHEAD_ITERATIONS) -> dict[str, Any]:
    """Interleave app and baseline start -> verify; alternate which goes first.

    Wall time is what the user waits for; the calling thread's CPU time (the database work
    of SQLite included, the stub's threads not) is also kept: it barely moves when other
    processes compete for the cores.
    """
    names = ("app_start", "app_verify", "base_start", "base_verify")
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    # The QR rendering inside each start request, and that request's time without it.
    qr_in_request: list[float] = []
    wall["app_start_beside_qr"] = []
    qr_timer = _QRTimer().install()

    def timed(name: str, call: Callable[[], Any], record: bool) -> Any:
        qr_timer.spent_ms = 0.0
        wall_started, cpu_started = time.perf_counter(), time.thread_time()
        result = call()
        if record:
            cpu[name].append((time.thread_time() - cpu_started) * 1000)
            wall[name].append((time.perf_counter() - wall_started) * 1000)
            if name == "app_start":
                qr_in_request.append(qr_timer.spent_ms)
                wall["app_start_beside_qr"].append(wall[name][-1] - qr_timer.spent_ms)
        return result

    def app_pair(record: bool) -> None:
        enrollment_id = timed("app_start", driver.app_start, record)
        timed("app_verify", lambda: driver.app_verify(enrollment_id), record)

    def base_pair(record: bool) -> None:
        enrollment_id = timed("base_start", driver.base_start, record)
        timed("base_verify", lambda: driver.base_verify(enrollment_id), record)

    for _ in range(WARMUP):
        app_pair(False)
        base_pair(False)
    for iteration in range(iterations):
        first, second = (app_pair, base_pair) if iteration % 2 == 0 else (base_pair, app_pair)
        first(True)
        second(True)
    qr_timer.uninstall()
    return {
        "wall": {name: summary(values) for name, values in wall.items()},
        "cpu": {name: summary(values) for name, values in cpu.items()},
        "qr_in_request": summary(qr_in_request),
    }


class _QRTimer:
    """Times ``render_qr`` inside the start view: rendered there, the QR code runs slower
    than on its own (the request has pushed it out of the CPU's caches)."""

    def __init__(self) -> None:
        self.spent_ms = 0.0

    def install(self) -> _QRTimer:
        from cognito_mfa import views

        self._views, self._original = views, views.render_qr

        def timed_render_qr(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return self._original(*args, **kwargs)
            finally:
                self.spent_ms += (time.perf_counter() - started) * 1000

        views.render_qr = timed_render_qr
        return self

    def uninstall(self) -> None:
        self._views.render_qr = self._original


def measure_qr() -> dict[str, Any]:
    """Time ``render_qr`` of a Cognito-sized otpauth URI (SVG + PNG, and each alone)."""
    from bench.stub import SECRET_CODE
    from cognito_mfa.otpauth import build_otpauth_uri, render_qr

    uri = build_otpauth_uri(secret=SECRET_CODE, issuer="Bench Site", account="bench-alice")
    results = {}
    for name, options in (
        ("both", {}),
        ("svg", {"png": False}),
        ("png", {"svg": False}),
    ):
        for _ in range(20):
            render_qr(uri, **options)
        timings = [_timed(lambda o=options: render_qr(uri, **o))[0] for _ in range(300)]
        results[name] = summary(timings)
    return results


def count_queries(key: SigningKey) -> tuple[dict[str, int], dict[str, int]]:
    """Count the SQL statements of each endpoint for a user who already has a site account.

    Return the statements, and everything Django captured (with BEGIN/COMMIT, which
    ``django_assert_max_num_queries`` counts too).
    """
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from cognito_mfa.models import Enrollment, EnrollmentFlow, EnrollmentStatus

    driver = Driver(key.access_token("bench-queries"))
    driver.get("/api/mfa/status/")  # the user's row exists from now on, as on a real site

    counts: dict[str, int] = {}
    captured_counts: dict[str, int] = {}

    def counted(name: str, call: Callable[[], Any]) -> Any:
        with CaptureQueriesContext(connection) as captured:
            result = call()
        statements = [
            query
            for query in captured.captured_queries
            if not query["sql"].upper().startswith(TRANSACTION_CONTROL)
        ]
        counts[name] = len(statements)
        captured_counts[name] = len(captured.captured_queries)
        if os.environ.get("COGNITO_MFA_BENCH_SHOW_SQL"):
            for query in captured.captured_queries:
                print(f"{name}: {query['sql'][:160]}", file=sys.stderr)
        return result

    enrollment_id = counted("start", driver.app_start)
    counted("status", lambda: driver.get("/api/mfa/status/"))
    counted("verify", lambda: driver.app_verify(enrollment_id))
    user = Enrollment.objects.get(pk=enrollment_id).user
    now = time.time()
    from datetime import UTC, datetime

    Enrollment.objects.bulk_create(
        Enrollment(
            user=user,
            cognito_username="bench-queries",
            flow=EnrollmentFlow.ACCESS_TOKEN,
            status=EnrollmentStatus.CANCELLED,
            created_at=datetime.fromtimestamp(now - index, tz=UTC),
            expires_at=datetime.fromtimestamp(now - index + 600, tz=UTC),
        )
        for index in range(LISTED_ROWS)
    )
    listed = counted("list", lambda: driver.get("/api/mfa/enrollments/"))
    assert len(listed) == 50
    enrollment_id = driver.app_start()
    counted("cancel", lambda: driver.delete(f"/api/mfa/enrollments/{enrollment_id}/"))
    return counts, captured_counts


def _local_refresh_mfa_states(context: Any, usernames: list[str]) -> dict[str, Any]:
    """Stand-in with the shape of ``flows.refresh_mfa_states`` (used only while it is absent):
    ``AdminGetUser`` for each user, at most ``COGNITO_MFA_ADMIN_REFRESH_CONCURRENCY`` at once."""
    from concurrent.futures import ThreadPoolExecutor

    from cognito_mfa.cognito import get_client
    from cognito_mfa.conf import app_settings

    client = get_client()
    with ThreadPoolExecutor(max_workers=app_settings.ADMIN_REFRESH_CONCURRENCY) as pool:
        states = pool.map(lambda name: client.admin_get_user(username=name), usernames)
        return dict(zip(usernames, states, strict=True))


def measure_admin_refresh() -> dict[str, Any]:
    """Refresh 500 users' MFA state against a stub answering in 20 ms: bounded vs serial."""
    from django.contrib.auth import get_user_model
    from django.test.utils import override_settings

    from cognito_mfa import flows
    from cognito_mfa.conf import app_settings

    refresh = getattr(flows, "refresh_mfa_states", None)
    implementation = "cognito_mfa.flows.refresh_mfa_states"
    if refresh is None:
        refresh = _local_refresh_mfa_states
        implementation = "bench-local stand-in (flows.refresh_mfa_states not present)"
    user_model = get_user_model()
    usernames = [f"bench-refresh-{index:03d}" for index in range(REFRESH_USERS)]
    user_model.objects.bulk_create(
        [user_model(username=name) for name in usernames], ignore_conflicts=True
    )
    admin, _ = user_model.objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    stub = CognitoStub({"AdminGetUser": REFRESH_SERVICE_TIME}).start()
    try:
        with override_settings(COGNITO_MFA_ENDPOINT_URL=stub.url):
            context = flows.Context.build("admin", None, actor=admin)
            refresh(context, usernames[:20])  # warm the client and its connection pool
            runs: dict[str, Any] = {}
            cap = app_settings.ADMIN_REFRESH_CONCURRENCY
            for label, concurrency in (("bounded", cap), ("serial", 1)):
                with override_settings(COGNITO_MFA_ADMIN_REFRESH_CONCURRENCY=concurrency):
                    stub.stats.reset()
                    elapsed, _ = _timed(lambda: refresh(context, usernames))
                    stats = stub.stats.snapshot()
                    runs[label] = {
                        "concurrency": concurrency,
                        "wall_s": round(elapsed / 1000, 3),
                        "calls": stats["calls"].get("AdminGetUser", 0),
                        "peak_in_flight": stats["peak_in_flight"],
                        "stub_service_ms": summary(stats["service_ms"]),
                    }
    finally:
        stub.stop()
    return {
        "implementation": implementation,
        "users": REFRESH_USERS,
        "service_time_ms": REFRESH_SERVICE_TIME * 1000,
        "cap": cap,
        **runs,
        "speedup": round(runs["serial"]["wall_s"] / runs["bounded"]["wall_s"], 2),
    }


def overhead_phase(with_refresh: bool) -> dict[str, Any]:
    key = SigningKey()
    stub = CognitoStub().start()
    try:
        _setup(stub.url, key)
        _migrate()
        driver = Driver(key.access_token("bench-alice"))
        stub.stats.reset()
        overhead = measure_overhead(driver)
        stub_stats = stub.stats.snapshot()
        result: dict[str, Any] = {
            "requests": overhead["wall"],
            "requests_cpu": overhead["cpu"],
            "stub_service_ms": summary(stub_stats["service_ms"]),
            "qr_render_ms": measure_qr(),
            "qr_render_in_request_ms": overhead["qr_in_request"],
        }
        result["queries"], result["queries_captured"] = count_queries(key)
    finally:
        stub.stop()
    if with_refresh:
        result["admin_refresh"] = measure_admin_refresh()
    from django.db import connection

    result["database"] = connection.vendor
    return result


def wait_phase() -> dict[str, Any]:
    """What a user waits for, app against baseline, when Cognito takes 20 ms a call.

    One run, app and baseline pairs alternated (the order flipped every iteration), so both
    sides see the same machine; the ratios of the p50s hold across machines better than
    milliseconds do.
    """
    key = SigningKey()
    stub = CognitoStub(dict.fromkeys(WAIT_OPERATIONS, WAIT_SERVICE_TIME)).start()
    try:
        _setup(stub.url, key)
        _migrate()
        driver = Driver(key.access_token("bench-wait"))
        stub.stats.reset()
        wall = measure_overhead(driver, WAIT_ITERATIONS)["wall"]
        stub_stats = stub.stats.snapshot()
    finally:
        stub.stop()
    from django.db import connection

    return {
        "database": connection.vendor,
        "iterations": WAIT_ITERATIONS,
        "stub_service_ms": summary(stub_stats["service_ms"]),
        "requests": {
            name: wall[name] for name in ("app_start", "base_start", "app_verify", "base_verify")
        },
        "verify_wait_ratio": round(wall["app_verify"]["p50"] / wall["base_verify"]["p50"], 3),
        "start_wait_ratio": round(wall["app_start"]["p50"] / wall["base_start"]["p50"], 3),
    }


def cold_phase() -> dict[str, Any]:
    """Time a fresh process: Django setup, importing the app's views, the first requests."""
    started = time.perf_counter()
    key = SigningKey()
    stub = CognitoStub().start()
    os.environ["COGNITO_MFA_ENDPOINT_URL"] = stub.url
    os.environ[JWKS_ENV] = json.dumps(key.jwks())
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    token = key.access_token("bench-cold")
    prepared = time.perf_counter()
    import django

    django.setup()
    setup_ms = (time.perf_counter() - prepared) * 1000
    before = set(sys.modules)
    import_ms, _ = _timed(lambda: __import__("cognito_mfa.views"))
    imported = set(sys.modules) - before
    _migrate()

    from bench.support import COUNTS

    lazy = dict(COUNTS)  # nothing built or fetched before the first request
    driver = Driver(token)
    first_ms, enrollment_id = _timed(driver.app_start)
    after_first = dict(COUNTS)
    second_ms, _ = _timed(lambda: driver.app_verify(enrollment_id))
    for _ in range(5):
        driver.app_verify(driver.app_start())
    stub.stop()
    assert lazy == {"boto3_clients": 0, "jwks_fetches": 0}, lazy
    assert after_first == {"boto3_clients": 1, "jwks_fetches": 1}, after_first
    assert COUNTS == {"boto3_clients": 1, "jwks_fetches": 1}, COUNTS
    return {
        "django_setup_ms": round(setup_ms, 1),
        "import_views_ms": round(import_ms, 1),
        "boto3_imported_by_views": "boto3" in imported,
        "first_request_ms": round(first_ms, 1),
        "second_request_ms": round(second_ms, 1),
        "counts_before_first_request": lazy,
        "counts_after_first_request": after_first,
        "counts_after_12_requests": dict(COUNTS),
        "process_ms": round((time.perf_counter() - started) * 1000, 1),
    }


def main() -> None:
    phase = sys.argv[1]
    if phase == "overhead":
        result = overhead_phase(with_refresh="--refresh" in sys.argv)
    elif phase == "wait":
        result = wait_phase()
    elif phase == "cold":
        result = cold_phase()
    else:
        raise SystemExit(f"unknown phase {phase!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
