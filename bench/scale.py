"""``make bench-scale``: the help desk's pages, the API reads and the cleanup at 10k and 1M rows.

Starts a throw-away PostgreSQL cluster of its own on a free loopback port (as ``.ci/run``
does; run as root, the server runs as the ``postgres`` user), and for each size builds a
database of that many enrollments with about five audit events each (200k users, spread over
180 days) with set-based SQL, then in a fresh process times every admin page (default, page
50, each filter choice, searches), ``GET enrollments/`` and ``GET status/``, and runs the
cleanup (wall time, statements, longest statement). Writes ``bench/scale.json``.

``python -m bench.scale measure <rows>`` is the per-size process (``COGNITO_MFA_BENCH_DATABASE``
names its database); ``SCALE_SIZES=10000,100000`` changes the sizes.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if sys.path[0] == str(Path(__file__).resolve().parent):
    sys.path[0] = str(ROOT)  # run as a script: import bench.* and cognito_mfa from the repo

from bench.services import free_port, fresh_database  # noqa: E402

RESULTS = ROOT / "bench" / "scale.json"
SIZES = tuple(int(size) for size in os.environ.get("SCALE_SIZES", "10000,1000000").split(","))
USERS = 200_000
DAYS = 180
EVENTS_PER_ENROLLMENT = 5
REPEATS = 5  # timed loads per page after one warm-up; the median is reported
TARGETS = {
    "scale_growth_ratio": ("<=", 2.0),
    "scale_slowest_page_ms": ("<=", 300.0),
    "cleanup_longest_statement_ms": ("<=", 500.0),
}
SEARCHED_USER = "user12345"

# --- the data, set-based --------------------------------------------------------------------

# One enrollment in twenty is a stale pending one (past its expiry, its credential stored),
# for the cleanup to expire: the first rows of distinct users, so no user has two pending.
# The rest ended: mostly verified, some expired, cancelled or locked; one in seven came
# through the sign-in challenge.
ENROLLMENTS_SQL = """
INSERT INTO cognito_mfa_enrollment (
    id, user_id, cognito_username, flow, status, friendly_device_name, attempts, created_at,
    expires_at, verified_at, verified_by_id, finished_at, encrypted_credential,
    credential_expires_at, challenge_token_hash, verify_lease_until, preference_pending)
SELECT gen_random_uuid(), u.id, u.username,
    CASE WHEN s.pending OR s.r2 >= 0.15 THEN 'access_token' ELSE 'challenge' END,
    s.status, 'phone', CASE WHEN s.status = 'locked' THEN 5 ELSE 0 END,
    s.created, s.created + interval '10 minutes',
    CASE WHEN s.status = 'verified' THEN s.created + interval '1 minute' END,
    CASE WHEN s.status = 'verified' AND s.r2 > 0.95 THEN %(admin)s END,
    CASE WHEN s.pending THEN NULL ELSE s.created + interval '2 minutes' END,
    CASE WHEN s.pending THEN decode(repeat('5a', 1400), 'hex') END,
    CASE WHEN s.pending THEN s.created + interval '1 hour' END,
    '', NULL, false
FROM (
    SELECT g, g %% 20 = 0 AND g / 20 <= %(users)s AS pending,
        -- at least twenty minutes old: a pending row is past its expiry
        now() - interval '20 minutes' - random() * %(days)s * interval '1 day' AS created,
        random() AS r2,
        CASE WHEN g %% 20 = 0 AND g / 20 <= %(users)s THEN 'pending'
             ELSE (ARRAY['verified', 'verified', 'verified', 'verified', 'verified',
                         'verified', 'verified', 'expired', 'expired', 'cancelled',
                         'cancelled', 'locked'])[1 + (g * 7) %% 12] END AS status,
        CASE WHEN g %% 20 = 0 AND g / 20 <= %(users)s THEN g / 20
             ELSE 1 + (g::bigint * 7919) %% %(users)s END AS user_number
    FROM generate_series(1, %(rows)s) AS g
) AS s
JOIN auth_user AS u ON u.username = 'user' || s.user_number
"""

# Five events per enrollment, a minute apart from its start: what the flows write. Sources
# and outcomes are skewed as on a real site (mostly the API and "ok"; a few rare outcomes).
EVENTS_SQL = """
INSERT INTO cognito_mfa_auditevent (
    enrollment_id, user_id, cognito_username, actor_id, kind, source, outcome, ip_address,
    detail, created_at)
SELECT e.id, e.user_id, e.cognito_username, e.user_id,
    (ARRAY['started', 'verification_failed', 'verified', 'preference_changed',
           'state_refreshed'])[k],
    CASE WHEN e.flow = 'challenge' THEN 'challenge'
         WHEN k = 5 THEN (ARRAY['admin', 'admin', 'command'])[1 + abs(hashtext(e.id::text)) %% 3]
         ELSE 'api' END,
    CASE WHEN k = 2 THEN 'invalid_code'
         WHEN k = 5 AND abs(hashtext(e.id::text)) %% 50 = 0 THEN 'cognito_unavailable'
         WHEN k = 5 AND abs(hashtext(e.id::text)) %% 50 = 1 THEN 'not_found'
         ELSE 'ok' END,
    '192.0.2.7', '{}'::jsonb, e.created_at + k * interval '1 minute'
FROM cognito_mfa_enrollment AS e CROSS JOIN generate_series(1, %(events)s) AS k
"""


def build(rows: int) -> dict[str, Any]:
    """Fill the (migrated, empty) database with ``rows`` enrollments; return the timings."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    began = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name,"
            " email, is_staff, is_active, date_joined)"
            " SELECT '!', false, 'user' || g, '', '', 'user' || g || '@example.test', false,"
            " true, now() - interval '200 days' FROM generate_series(1, %s) AS g",
            [USERS],
        )
    admin = get_user_model()._default_manager.create_superuser("desk", "desk@example.test", "x")
    params = {"rows": rows, "users": USERS, "days": DAYS, "admin": admin.pk}
    with connection.cursor() as cursor:
        cursor.execute(ENROLLMENTS_SQL, params)
        enrollments = cursor.rowcount
        filled = time.monotonic()
        cursor.execute(EVENTS_SQL, {"events": EVENTS_PER_ENROLLMENT})
        events = cursor.rowcount
        loaded = time.monotonic()
    # What autovacuum keeps up on a live site: statistics and the visibility map.
    connection.ensure_connection()
    with connection.cursor() as cursor:
        for table in ("auth_user", "cognito_mfa_enrollment", "cognito_mfa_auditevent"):
            cursor.execute(f"VACUUM ANALYZE {table}")
    return {
        "enrollments": enrollments,
        "audit_events": events,
        "users": USERS,
        "enrollments_s": round(filled - began, 1),
        "audit_events_s": round(loaded - filled, 1),
        "vacuum_analyze_s": round(time.monotonic() - loaded, 1),
    }


# --- the pages ------------------------------------------------------------------------------


def admin_pages() -> dict[str, str]:
    from datetime import timedelta

    from django.utils import timezone

    from cognito_mfa.admin import OutcomeFilter, SourceFilter
    from cognito_mfa.models import AuditEvent, EnrollmentFlow, EnrollmentStatus

    enrollments = "/admin/cognito_mfa/enrollment/"
    events = "/admin/cognito_mfa/auditevent/"
    now = timezone.localtime()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    dates = {
        "past 7 days": (midnight - timedelta(days=7), midnight + timedelta(days=1)),
        "this month": (midnight.replace(day=1), midnight + timedelta(days=1)),
        "this year": (midnight.replace(month=1, day=1), midnight + timedelta(days=1)),
    }
    pages = {"enrollments": enrollments, "enrollments page 50": f"{enrollments}?p=50"}
    for status in EnrollmentStatus.values:
        pages[f"enrollments status={status}"] = f"{enrollments}?status__exact={status}"
    for flow in EnrollmentFlow.values:
        pages[f"enrollments flow={flow}"] = f"{enrollments}?flow__exact={flow}"
    for name, (since, until) in dates.items():
        query = f"created_at__gte={since.isoformat()}&created_at__lt={until.isoformat()}"
        pages[f"enrollments {name}"] = f"{enrollments}?{query.replace('+', '%2B')}"
    pages["enrollments search username"] = f"{enrollments}?q={SEARCHED_USER}"
    pages["enrollments search e-mail"] = f"{enrollments}?q=user777%40example.test"
    pages["events"] = events
    pages["events page 50"] = f"{events}?p=50"
    for kind in AuditEvent.Kind.values:
        pages[f"events kind={kind}"] = f"{events}?kind__exact={kind}"
    for source, _ in SourceFilter.fixed_choices:
        pages[f"events source={source}"] = f"{events}?source__exact={source}"
    for outcome in ("ok", "invalid_code", "cognito_unavailable", "throttled"):
        assert outcome in dict(OutcomeFilter.fixed_choices)
        pages[f"events outcome={outcome}"] = f"{events}?outcome__exact={outcome}"
    since, until = dates["past 7 days"]
    query = f"created_at__gte={since.isoformat()}&created_at__lt={until.isoformat()}"
    pages["events past 7 days"] = f"{events}?{query.replace('+', '%2B')}"
    pages["events search username"] = f"{events}?q={SEARCHED_USER}"
    return pages


def _timed(get: Any, url: str) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    response = get(url)  # warm-up: caches, the plan's pages in shared buffers
    assert response.status_code == 200, (url, response.status_code)
    times, cpu = [], []
    for _ in range(REPEATS):
        with CaptureQueriesContext(connection) as captured:
            began, began_cpu = time.perf_counter(), time.thread_time()
            response = get(url)
            times.append((time.perf_counter() - began) * 1000)
            cpu.append((time.thread_time() - began_cpu) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return {
        "ms": round(statistics.median(times), 2),
        # This process's CPU only (not the server's): steadier than wall time on a busy machine.
        "cpu_ms": round(statistics.median(cpu), 2),
        "sql_ms": round(sum(float(query["time"]) for query in captured.captured_queries) * 1000, 2),
        "statements": len(captured),
    }


def measure_pages() -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from bench.support import SigningKey

    admin = Client()
    admin.force_login(get_user_model()._default_manager.get(username="desk"))
    pages = {name: _timed(admin.get, url) for name, url in admin_pages().items()}
    for name in pages:
        pages[name]["kind"] = "admin"

    key = SigningKey()
    os.environ["COGNITO_MFA_BENCH_JWKS"] = json.dumps(key.jwks())
    api = Client(HTTP_AUTHORIZATION=f"Bearer {key.access_token(SEARCHED_USER)}")
    for name, url in (
        ("api enrollments", "/api/mfa/enrollments/"),
        ("api status", "/api/mfa/status/"),
    ):
        pages[name] = {**_timed(api.get, url), "kind": "api"}
    return pages


def measure_cleanup() -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from cognito_mfa import flows
    from cognito_mfa.models import AuditEvent, Enrollment

    before = {"enrollments": Enrollment.objects.count(), "events": AuditEvent.objects.count()}
    with CaptureQueriesContext(connection) as captured:
        began = time.perf_counter()
        report = flows.cleanup(flows.Context.build("command"))
        wall = time.perf_counter() - began
    durations = sorted(
        ((float(query["time"]), query["sql"]) for query in captured.captured_queries),
        reverse=True,
    )
    removed = report.deleted_enrollments + report.deleted_events
    return {
        "expired": report.expired,
        "deleted_enrollments": report.deleted_enrollments,
        "deleted_events": report.deleted_events,
        "rows_before": before,
        "wall_s": round(wall, 2),
        "statements": len(captured),
        "statements_per_1000_rows_changed": round(
            1000 * len(captured) / max(removed + report.expired, 1), 2
        ),
        "longest_statement_ms": round(durations[0][0] * 1000, 1) if durations else 0.0,
        "longest_statements": [
            {"ms": round(seconds * 1000, 1), "sql": sql[:160]} for seconds, sql in durations[:3]
        ],
    }


def measure(rows: int) -> dict[str, Any]:
    """The per-size process: migrate, fill, time the pages, run the cleanup."""
    from bench.stub import CognitoStub

    stub = CognitoStub().start()
    os.environ["COGNITO_MFA_ENDPOINT_URL"] = stub.url
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    os.environ.setdefault("COGNITO_MFA_BENCH_JWKS", "{}")
    import django

    django.setup()
    from django.core.management import call_command

    try:
        call_command("migrate", verbosity=0, interactive=False)
        built = build(rows)
        pages = measure_pages()
        cleanup = measure_cleanup()
    finally:
        stub.stop()
    return {"rows": rows, "build": built, "pages": pages, "cleanup": cleanup}


# --- the throw-away cluster and the report ---------------------------------------------------


class Cluster:
    """A PostgreSQL cluster in a temporary directory, on a free loopback port."""

    SETTINGS = (
        "-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
        "-c full_page_writes=off -c shared_buffers=1GB -c maintenance_work_mem=256MB "
        "-c max_wal_size=4GB -c autovacuum=off"
    )

    def __init__(self) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
        if not bins:
            raise SystemExit("bench-scale needs PostgreSQL's server (apt-get install postgresql)")
        self.bin = bins[-1]
        self.dir = Path(tempfile.mkdtemp(prefix="cognito-mfa-scale."))
        self.dir.chmod(0o755)
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)

    def start(self) -> Cluster:
        data = self.dir / "data"
        data.mkdir()
        if os.geteuid() == 0:
            shutil.chown(data, "postgres", "postgres")
        self._as_postgres("initdb", "-D", str(data), "-A", "trust", "-U", "postgres")
        options = f"-p {self.port} -k {data} {self.SETTINGS}"  # the socket where it may write
        self._as_postgres(
            "pg_ctl", "-D", str(data), "-l", str(data / "log"), "-w", "-o", options, "start"
        )
        return self

    def stop(self) -> None:
        try:
            self._as_postgres("pg_ctl", "-D", str(self.dir / "data"), "-m", "fast", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def create_database(self, name: str) -> str:
        return fresh_database(self.url, name)[0]  # the cluster goes, and its databases with it


def _run_size(database_url: str, rows: int) -> dict[str, Any]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(ROOT),
        COGNITO_MFA_BENCH_DATABASE=database_url,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
    )
    env.pop("AWS_PROFILE", None)
    done = subprocess.run(
        [sys.executable, "-m", "bench.scale", "measure", str(rows)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.scale measure {rows} failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    small, large = runs[0], runs[-1]
    ratios = {
        name: round(page["ms"] / max(small["pages"][name]["ms"], 0.01), 2)
        for name, page in large["pages"].items()
    }
    slowest = max(large["pages"], key=lambda name: large["pages"][name]["ms"])
    statements_differ = sorted(
        name
        for name, page in large["pages"].items()
        if page["statements"] != small["pages"][name]["statements"]
    )
    results: dict[str, Any] = {
        "sizes": [run["rows"] for run in runs],
        # The slowest page at the largest size, against the same page at the smallest.
        "scale_growth_ratio": ratios[slowest],
        "scale_slowest_page": slowest,
        "scale_slowest_page_ms": large["pages"][slowest]["ms"],
        "scale_growth_ratio_worst_page": max(ratios, key=lambda name: ratios[name]),
        "scale_growth_ratio_worst": max(ratios.values()),
        "pages_whose_statement_count_changed": statements_differ,
        "cleanup_wall_s": large["cleanup"]["wall_s"],
        "cleanup_statements": large["cleanup"]["statements"],
        "cleanup_longest_statement_ms": large["cleanup"]["longest_statement_ms"],
        "ratios": ratios,
        "runs": runs,
        "machine": {"cpus": os.cpu_count(), "load_average": [round(v, 2) for v in os.getloadavg()]},
    }
    results["targets"] = {
        name: {"target": f"{op} {limit:g}", "value": results[name], "met": results[name] <= limit}
        for name, (op, limit) in TARGETS.items()
    }
    return results


def print_table(results: dict[str, Any]) -> None:
    small, large = results["runs"][0], results["runs"][-1]
    print(f"{'page':<42} {small['rows']:>9,} ms {large['rows']:>9,} ms  ratio  statements")
    for name, page in large["pages"].items():
        before = small["pages"][name]
        print(
            f"{name:<42} {before['ms']:>12.1f} {page['ms']:>12.1f} {results['ratios'][name]:>6.2f}"
            f"  {before['statements']} / {page['statements']}"
        )
    for run in results["runs"]:
        cleanup = run["cleanup"]
        print(
            f"cleanup at {run['rows']:,}: expired {cleanup['expired']:,}, deleted "
            f"{cleanup['deleted_enrollments']:,} enrollments and {cleanup['deleted_events']:,} "
            f"events in {cleanup['wall_s']} s, {cleanup['statements']:,} statements, longest "
            f"{cleanup['longest_statement_ms']} ms"
        )
    for name, target in results["targets"].items():
        print(
            f"{name}: {target['value']} (target {target['target']}: "
            f"{'met' if target['met'] else 'MISSED'})"
        )


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "measure":
        print(json.dumps(measure(int(sys.argv[2]))))
        return
    began = time.monotonic()
    cluster = Cluster().start()
    try:
        runs = []
        for rows in SIZES:
            url = cluster.create_database(f"scale_{rows}")
            runs.append(_run_size(url, rows))
            print(f"{rows:,} rows measured after {time.monotonic() - began:.0f} s", flush=True)
    finally:
        cluster.stop()
    results = summarise(runs)
    results["duration_s"] = round(time.monotonic() - began)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)


if __name__ == "__main__":
    main()
