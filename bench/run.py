"""``make bench``: how much cognito_mfa adds to Cognito's own time, and what it costs.

Prints a table and writes ``bench/results.json``. Phases (each in fresh processes):

1. overhead per request, in-process, app vs a bare DRF baseline, interleaved: SQLite, and
   PostgreSQL when ``COGNITO_MFA_BENCH_POSTGRES_URL`` is set (plus SQL queries per endpoint,
   QR rendering and the admin refresh of 500 users);
2. throughput under gunicorn (2 workers, threads) on PostgreSQL, app vs baseline rounds;
3. the enrollment storm: two gunicorn processes on PostgreSQL and Redis, users arriving at 4x
   what Cognito's quota allows, with the call budget and without it (``bench/storm.py``);
4. the wait ratios: app and baseline requests alternated, Cognito answering in 20 ms;
5. the cold path: import time, first request, one boto3 client and one JWKS fetch.

Without ``COGNITO_MFA_BENCH_POSTGRES_URL`` / ``COGNITO_MFA_BENCH_REDIS_URL`` a throw-away
PostgreSQL cluster and Redis server are started from the machine's binaries
(``bench/services.py``); what could not be started is reported and its phases skipped.

Only medians and ratios from one run mean anything on a shared machine; the load average
before and after each phase is recorded next to them.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if sys.path[0] == str(Path(__file__).resolve().parent):
    sys.path[0] = str(ROOT)  # run as a script: import bench.* and cognito_mfa from the repo

from bench.load import run_round  # noqa: E402
from bench.services import fresh_database, services  # noqa: E402
from bench.stats import summary  # noqa: E402
from bench.storm import (  # noqa: E402
    STORM_CALLS_PER_ENROLLMENT,
    STORM_QUOTA_MULTIPLE,
    STORM_WINDOW_S,
    Storm,
    warm_up,
)
from bench.stub import COGNITO_QUOTAS  # noqa: E402
from bench.support import JWKS_ENV, SigningKey  # noqa: E402

RESULTS = ROOT / "bench" / "results.json"
POSTGRES_ENV = "COGNITO_MFA_BENCH_POSTGRES_URL"
DB_NAME_ENV = "COGNITO_MFA_BENCH_DB_NAME"
REDIS_ENV = "COGNITO_MFA_BENCH_REDIS_URL"

# The storm's call budget: the site alone in its account takes 24 of UserResourceUpdate's 25/s.
STORM_BUDGET = {"UserResourceUpdate": 24, "UserRead": 110, "UserAuthentication": 110}
STORM_UNBUDGETED = dict.fromkeys(STORM_BUDGET)
STORM_THREADS = 16  # per gunicorn process; the warm-up enrolls one user per thread
STORM_GUNICORN = ["--workers", "1", "--threads", str(STORM_THREADS), "--worker-class", "gthread"]

# Throughput: the same users and concurrency for the app and the baseline, rounds alternated.
LOAD_ACCOUNTS = 120  # Cognito users; each user in flight cycles through its own share
LOAD_CONCURRENCY = 16  # simulated SPA users in flight, each looping start -> verify
LOAD_ROUNDS = 5  # per side and load; the ratio is of the medians
LOAD_WARMUP_S = 0.5  # per round, not counted: threads start, connections open
LOAD_WINDOW_S = 3.0  # per round, the steady state counted
LOAD_STUB_SERVICE_MS = 20.0  # per Cognito call, as in the admin refresh: a remote service
# Loads: (label, stub service time per Cognito call). The target is judged on the first; the
# CPU-bound one shows every cycle the app spends, the slower one how the ratio moves when
# Cognito's own time grows.
LOADS = (("cognito_like", LOAD_STUB_SERVICE_MS), ("cpu_bound", 0.0), ("slower_cognito", 50.0))
# The judged load again with fewer and more users in flight (3 rounds a side each): where the
# app's extra CPU per request starts to show in the ratio, and whether it holds past 16.
LOAD_SWEEP_USERS = (1, 4, 8, 32)
LOAD_SWEEP_ROUNDS = 3
# 16 threads: as many as users in flight, so requests wait on Cognito, not for a thread.
GUNICORN = ["--workers", "2", "--threads", "8", "--worker-class", "gthread"]

TARGETS = {
    "verify_overhead_ms_p50": ("<=", 2.0),
    "start_overhead_ms_p50": ("<=", 2.0),
    "qr_render_ms_p50": ("<=", 3.0),
    # throughput_ratio (saturation on two shared cores) is reported, no longer a target: it
    # moved with the machine more than with the app; CPU per request is kept as a figure.
    "admin_refresh_speedup": (">=", 5.0),
    "storm_goodput_ratio": (">=", 0.85),
    "storm_throttled_calls": ("<=", 0),
    "storm_stranded_users": ("<=", 0),
    "storm_refusal_ms_p99": ("<=", 10.0),
    "storm_refusal_server_ms_p99": ("<=", 10.0),
    "verify_wait_ratio": ("<=", 1.10),
    "start_wait_ratio": ("<=", 1.30),
}
# What storm_refusal_ms_p99 and storm_refusal_server_ms_p99 measure.
REFUSAL_MEASURES = {
    "storm_refusal_ms_p99": "client: the load generator's clock around connect, send and read "
    "of each refused request (its own threads' scheduling included)",
    "storm_refusal_server_ms_p99": "server: gunicorn's access-log %(D)s of each 429, from the "
    "request read to the answer written (no connect, no wait for a free server thread)",
}
QUERY_TARGETS = {"verify": 6, "start": 6, "status": 2, "list": 2}


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(ROOT),
        DJANGO_SETTINGS_MODULE="bench.settings",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
    )
    env.pop("AWS_PROFILE", None)
    env.update(extra)
    return env


def _load() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def _phase(args: list[str], env: dict[str, str], timeout: float = 240) -> dict[str, Any]:
    """Run ``python -m bench.inprocess ...``; return its JSON with the load around it."""
    before = _load()
    completed = subprocess.run(
        [sys.executable, "-m", "bench.inprocess", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"bench.inprocess {args} failed:\n{completed.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    result["load_average"] = {"before": before, "after": _load()}
    return result


def _overhead(phase: dict[str, Any]) -> dict[str, Any]:
    requests, qr = phase["requests"], phase["qr_render_ms"]["both"]["p50"]
    cpu = phase["requests_cpu"]

    def minus(app: str, base: str, key: str) -> float:
        return round(requests[app][key] - requests[base][key], 3)

    return {
        "verify_ms_p50": minus("app_verify", "base_verify", "p50"),
        "verify_ms_p99": minus("app_verify", "base_verify", "p99"),
        "start_with_qr_ms_p50": minus("app_start", "base_start", "p50"),
        "start_with_qr_ms_p99": minus("app_start", "base_start", "p99"),
        # beside QR rendering: the start request's own overhead, QR reported on its own
        # (its p50 rendered on its own, the conservative figure the target is judged on)
        "start_ms_p50": round(minus("app_start", "base_start", "p50") - qr, 3),
        # the same with each request's own QR rendering time taken out of it
        "start_beside_qr_in_request_ms_p50": minus("app_start_beside_qr", "base_start", "p50"),
        # the same from the request thread's CPU time, which other processes barely move
        "cpu_verify_ms_p50": round(cpu["app_verify"]["p50"] - cpu["base_verify"]["p50"], 3),
        "cpu_start_ms_p50": round(cpu["app_start"]["p50"] - cpu["base_start"]["p50"] - qr, 3),
    }


# --- PostgreSQL ---------------------------------------------------------------------------------


def _postgres_database(url: str, suffix: str = "") -> tuple[str, Any]:
    """Create a fresh database for the run; return its URL and a function that drops it."""
    return fresh_database(url, os.environ.get(DB_NAME_ENV, "cognito_mfa_bench") + suffix)


# --- throughput ---------------------------------------------------------------------------------


class _Process:
    """A child process whose output lines are collected; waits for one matching a pattern."""

    def __init__(self, args: list[str], env: dict[str, str], stdin: bool = False) -> None:
        self.popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                match = re.search(pattern, line)
                if match:
                    return match
            if self.popen.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"no line matching {pattern!r}:\n" + "\n".join(self.lines[-30:]))

    def stop(self) -> None:
        if self.popen.poll() is None:
            if self.popen.stdin is not None:
                self.popen.stdin.close()
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _postgres_pids() -> list[int]:
    """The local PostgreSQL server's processes (none when it runs elsewhere)."""
    pids = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            name = status.read_text().partition("\n")[0]
        except OSError:
            continue
        if name.split() in (["Name:", "postgres"], ["Name:", "postmaster"]):
            pids.append(int(status.parent.name))
    return pids


class _CPUProbe:
    """CPU used per process group during a round: gunicorn's workers, PostgreSQL (when it
    runs on this machine), the Cognito stub and the load generator (this process)."""

    def __init__(self, workers: list[int], stub: int) -> None:
        self.groups = {"workers": workers, "stub": [stub], "load_generator": [os.getpid()]}

    def read(self) -> dict[str, float]:
        groups = {**self.groups, "postgresql": _postgres_pids()}
        return {name: sum(_cpu_seconds(pid) for pid in pids) for name, pids in groups.items()}

    @staticmethod
    def per_request_ms(
        before: dict[str, float], after: dict[str, float], requests: int
    ) -> dict[str, float]:
        return {
            name: round((after[name] - before.get(name, 0.0)) * 1000 / max(requests, 1), 2)
            for name in after
        }


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _get_json(host: str, port: int, path: str) -> Any:
    import http.client

    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request("GET", path)
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


# The access log's line per request: status, time taken in microseconds (%(D)s: from the
# request read to the answer written, in the worker's thread) and the path.
ACCESS_LOG_FORMAT = "%(s)s %(D)s %(U)s"


def _gunicorn(
    env: dict[str, str], options: list[str], access_log: Path | None = None
) -> tuple[_Process, int]:
    """Start gunicorn serving the bench site on a free port; return it and its port. A server
    that does not come up is stopped before the error is raised."""
    logging = ["--access-logfile", str(access_log), "--access-logformat", ACCESS_LOG_FORMAT]
    server = _Process(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "example_project.wsgi:application",
            *options,
            "--bind",
            "127.0.0.1:0",
            "--log-level",
            "info",
            *(logging if access_log is not None else []),
        ],
        env,
    )
    try:
        port = int(server.wait_for(r"Listening at: http://127\.0\.0\.1:(\d+)").group(1))
        server.wait_for(r"Booting worker with pid", timeout=30)
    except BaseException:
        server.stop()
        raise
    return server, port


def _log_sizes(access_logs: list[Path]) -> list[int]:
    return [log.stat().st_size if log.exists() else 0 for log in access_logs]


def _refusal_times_ms(access_logs: list[Path], skip: list[int]) -> list[float]:
    """The server-side time of every 429 in the access logs past the first ``skip`` bytes of
    each (the warm-up's), in ms: the storm's per-user throttles never bite, so each is a
    refusal for the call budget."""
    times = []
    for log, offset in zip(access_logs, skip, strict=True):
        text = log.read_bytes()[offset:].decode() if log.exists() else ""
        for line in text.splitlines():
            status, micros, _ = line.split(" ", 2)
            if status == "429":
                times.append(int(micros) / 1000)
    return times


def throughput(database_url: str) -> dict[str, Any]:
    """gunicorn on PostgreSQL; alternate app and baseline rounds under the same load.

    The ``LOADS`` (Cognito answering in ``LOAD_STUB_SERVICE_MS``, what a site sees and what the
    target is judged on; at once; slower), then the judged load with ``LOAD_SWEEP_USERS``
    users in flight instead of ``LOAD_CONCURRENCY``.
    """
    key = SigningKey()
    stub = _Process([sys.executable, "-m", "bench.stub"], _env(), stdin=True)
    server = None
    try:
        stub_url = stub.wait_for(r"^(http://127\.0\.0\.1:\d+)$").group(1)
        env = _env(
            COGNITO_MFA_BENCH_DATABASE=database_url,
            COGNITO_MFA_ENDPOINT_URL=stub_url,
            **{JWKS_ENV: json.dumps(key.jwks())},
        )
        server, port = _gunicorn(env, GUNICORN)
        host = "127.0.0.1"
        users = [key.access_token(f"bench-load-{index:03d}") for index in range(LOAD_ACCOUNTS)]
        # Warm-up: both workers build their client and fetch the JWKS; every account gets its
        # site user row (each user in flight goes through its 7-8 accounts many times over).
        for kind in ("app", "baseline"):
            warm = run_round(
                host, port, kind, users, concurrency=LOAD_CONCURRENCY, window_s=LOAD_WINDOW_S
            )
            if warm["errors"]:
                raise SystemExit(f"warm-up of the {kind} failed: {warm['first_errors']}")
        workers = _children(server.popen.pid)
        probe = _CPUProbe(workers, stub.popen.pid)
        loads = {}
        for label, service_ms in LOADS:
            _post_json(stub_url, "/_service_time", _stub_service_times(service_ms / 1000))
            loads[label] = _load_rounds(host, port, users, service_ms, probe)
        _post_json(stub_url, "/_service_time", _stub_service_times(LOAD_STUB_SERVICE_MS / 1000))
        sweep = [
            {
                "users": count,
                **_load_rounds(
                    host,
                    port,
                    users,
                    LOAD_STUB_SERVICE_MS,
                    probe,
                    concurrency=count,
                    rounds=LOAD_SWEEP_ROUNDS,
                ),
            }
            for count in LOAD_SWEEP_USERS
        ]
        reports: dict[int, Any] = {}
        for _ in range(40):  # new connections until both workers have answered
            report = _get_json(host, port, "/bench/process/")
            reports[report["pid"]] = report
            if len(reports) >= len(workers):
                break
    finally:
        if server is not None:
            server.stop()
        stub.stop()
    return {
        "server": "gunicorn " + " ".join(GUNICORN),
        "accounts": LOAD_ACCOUNTS,
        "concurrency": LOAD_CONCURRENCY,
        "warmup_s": LOAD_WARMUP_S,
        "window_s": LOAD_WINDOW_S,
        "rounds_per_side": LOAD_ROUNDS,
        **loads,
        "ratio": loads["cognito_like"]["ratio"],
        "by_users_in_flight": sweep,
        "workers": [
            {
                "pid": pid,
                "rss_mb": round(_rss_kb_safe(pid, reports) / 1024, 1),
                "boto3_clients": reports.get(pid, {}).get("boto3_clients"),
                "jwks_fetches": reports.get(pid, {}).get("jwks_fetches"),
            }
            for pid in workers
        ],
    }


def _load_rounds(
    host: str,
    port: int,
    users: list[str],
    service_ms: float,
    probe: _CPUProbe,
    *,
    concurrency: int = LOAD_CONCURRENCY,
    rounds: int = LOAD_ROUNDS,
) -> dict[str, Any]:
    before = _load()
    done = []
    for index in range(rounds):
        order = ("app", "baseline") if index % 2 == 0 else ("baseline", "app")
        for kind in order:
            result = run_round(
                host,
                port,
                kind,
                users,
                concurrency=concurrency,
                window_s=LOAD_WINDOW_S,
                warmup_s=LOAD_WARMUP_S,
                sample=probe.read,
            )
            cpu_before, cpu_after = result.pop("samples")
            cpu = probe.per_request_ms(cpu_before, cpu_after, result["requests"])
            done.append({**result, "cpu_ms_per_request": cpu})

    def side(kind: str) -> dict[str, Any]:
        mine = [item for item in done if item["kind"] == kind]
        rates = [item["requests_per_s"] for item in mine]
        return {
            "requests_per_s_median": summary(rates)["p50"],
            "requests_per_s_rounds": rates,
            "latency_ms_p50_median": summary([r["latency_ms"]["p50"] for r in mine])["p50"],
            "latency_ms_p99_median": summary([r["latency_ms"]["p99"] for r in mine])["p50"],
            "errors": sum(item["errors"] for item in mine),
            "first_errors": [e for item in mine for e in item["first_errors"]][:3],
            "timed_out_rounds": sum(item["timed_out"] for item in mine),
            "cpu_ms_per_request_median": {
                name: summary([item["cpu_ms_per_request"][name] for item in mine])["p50"]
                for name in mine[0]["cpu_ms_per_request"]
            },
        }

    app, base = side("app"), side("baseline")
    return {
        "stub_service_ms": service_ms,
        "app": app,
        "baseline": base,
        "ratio": round(app["requests_per_s_median"] / base["requests_per_s_median"], 3),
        "load_average": {"before": before, "after": _load()},
    }


def _post_json(base_url: str, path: str, body: Any) -> None:
    import http.client

    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request("POST", path, json.dumps(body).encode())
        connection.getresponse().read()
    finally:
        connection.close()


def _rss_kb_safe(pid: int, reports: dict[int, Any]) -> int:
    report = reports.get(pid)
    return int(report["rss_kb"]) if report else 0


def _stub_service_times(seconds: float) -> dict[str, float]:
    operations = ("GetUser", "AssociateSoftwareToken", "VerifySoftwareToken")
    return {name: seconds for name in (*operations, "SetUserMFAPreference")}


# --- the storm ----------------------------------------------------------------------------------


def storm_run(postgres_url: str, redis_url: str, budget: dict[str, Any], label: str) -> Any:
    """One storm on a fresh database: stub with Cognito's quotas, two gunicorn processes."""
    key = SigningKey()
    scratch = Path(tempfile.mkdtemp(prefix=f"cognito-mfa-storm-{label}-"))
    access_logs = [scratch / f"access-{index}.log" for index in range(2)]
    database_url, drop = _postgres_database(postgres_url, f"_storm_{label}")
    stub = _Process([sys.executable, "-m", "bench.stub"], _env(), stdin=True)
    servers: list[_Process] = []
    try:
        stub_url = stub.wait_for(r"^(http://127\.0\.0\.1:\d+)$").group(1)
        env = _env(
            COGNITO_MFA_BENCH_DATABASE=database_url,
            COGNITO_MFA_ENDPOINT_URL=stub_url,
            COGNITO_MFA_BENCH_REDIS_URL=redis_url,
            COGNITO_MFA_BENCH_REDIS_PREFIX=f"storm-{label}-{os.getpid()}",
            COGNITO_MFA_BENCH_CALL_BUDGET=json.dumps(budget),
            **{JWKS_ENV: json.dumps(key.jwks())},
        )
        subprocess.run(
            [sys.executable, "-m", "django", "migrate", "--verbosity", "0"],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=240,
        )
        ports = []
        for index in range(2):
            server, port = _gunicorn(env, STORM_GUNICORN, access_logs[index])
            servers.append(server)
            ports.append(port)
        _post_json(stub_url, "/_service_time", _stub_service_times(LOAD_STUB_SERVICE_MS / 1000))
        enrollments_per_s = COGNITO_QUOTAS["UserResourceUpdate"] / STORM_CALLS_PER_ENROLLMENT
        arrivals_per_s = STORM_QUOTA_MULTIPLE * enrollments_per_s
        count = int(arrivals_per_s * STORM_WINDOW_S)
        tokens = [key.access_token(f"storm-{label}-{index:05d}") for index in range(count)]
        _post_json(stub_url, "/_quota", COGNITO_QUOTAS)
        warm_tokens = [
            key.access_token(f"storm-{label}-warm-{index:03d}")
            for index in range(STORM_THREADS * len(ports))
        ]
        warmed = warm_up(ports, warm_tokens)
        warm_up_log_bytes = _log_sizes(access_logs)
        _post_json(stub_url, "/_reset", {})
        before = _load()
        cpu_before = _cpu_seconds(os.getpid())
        result = Storm(ports, tokens, arrivals_per_s, STORM_WINDOW_S).run()
        generator_cpu_s = _cpu_seconds(os.getpid()) - cpu_before
        stats = _get_json("127.0.0.1", int(urlsplit(stub_url).port or 0), "/_stats")
    finally:
        for server in servers:
            server.stop()
        stub.stop()
        drop()
    refusals_server = _refusal_times_ms(access_logs, warm_up_log_bytes)
    shutil.rmtree(scratch, ignore_errors=True)
    throttled = stats["throttled"]
    return {
        **result,
        "warm_up": warmed,
        "call_budget": budget,
        "stub_quotas": COGNITO_QUOTAS,
        "stub_service_ms": LOAD_STUB_SERVICE_MS,
        "server": "2 x gunicorn " + " ".join(STORM_GUNICORN),
        "goodput_ratio": round(result["completed_per_s"] / enrollments_per_s, 3),
        "throttled_calls": sum(throttled.values()),
        "throttled_by_operation": throttled,
        "cognito_calls": stats["calls"],
        # The same refusals timed by gunicorn (%(D)s): from the request read to the answer
        # written, without the client's connect and the wait for a free server thread.
        "refusal_server_ms": summary(refusals_server) if refusals_server else None,
        "refusals_in_access_log": len(refusals_server),
        "load_generator_cpu_s": round(generator_cpu_s, 1),
        "load_average": {"before": before, "after": _load()},
    }


def storm(postgres_url: str, redis_url: str) -> dict[str, Any]:
    return {
        "with_budget": storm_run(postgres_url, redis_url, STORM_BUDGET, "budget"),
        "without_budget": storm_run(postgres_url, redis_url, STORM_UNBUDGETED, "nobudget"),
    }


# --- cold path ----------------------------------------------------------------------------------


def import_times(env: dict[str, str]) -> dict[str, Any]:
    """``python -X importtime``: cumulative import time of the app's modules and heavy deps."""
    code = "import django; django.setup(); import cognito_mfa.views, cognito_mfa.flows"
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    cumulative: dict[str, float] = {}
    for line in completed.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line)
        if match:
            cumulative[match.group(4)] = int(match.group(2)) / 1000
    wanted = ("cognito_mfa", "cognito_mfa.models", "cognito_mfa.views", "cognito_mfa.flows")
    heavy = ("boto3", "botocore.session", "segno", "jwt", "rest_framework.views", "cryptography")
    return {name: round(cumulative[name], 1) for name in (*wanted, *heavy) if name in cumulative}


def cold(env: dict[str, str]) -> dict[str, Any]:
    runs = [_phase(["cold"], env) for _ in range(3)]
    keys = ("django_setup_ms", "import_views_ms", "first_request_ms", "second_request_ms")
    result: dict[str, Any] = {key: summary([run[key] for run in runs])["p50"] for key in keys}
    result["runs"] = len(runs)
    result["counts_after_first_request"] = runs[0]["counts_after_first_request"]
    result["counts_after_12_requests"] = runs[0]["counts_after_12_requests"]
    result["counts_before_first_request"] = runs[0]["counts_before_first_request"]
    result["boto3_imported_by_views"] = runs[0]["boto3_imported_by_views"]
    result["import_time_ms_cumulative"] = import_times(env)
    return result


# --- report -------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    import django

    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "platform": platform.platform(),
        "load_average_at_start": _load(),
    }


def _met(value: float | None, target: tuple[str, float]) -> bool | None:
    if value is None:
        return None
    operator, bound = target
    return value <= bound if operator == "<=" else value >= bound


def build_results(sqlite: dict[str, Any], pg: dict[str, Any] | None, **rest: Any) -> dict[str, Any]:
    overhead = _overhead(sqlite)
    refresh = sqlite["admin_refresh"]
    tp = rest["throughput"]
    results: dict[str, Any] = {
        "verify_overhead_ms_p50": overhead["verify_ms_p50"],
        "start_overhead_ms_p50": overhead["start_ms_p50"],
        "start_overhead_with_qr_ms_p50": overhead["start_with_qr_ms_p50"],
        "qr_render_ms_p50": sqlite["qr_render_ms"]["both"]["p50"],
        "throughput_ratio": tp.get("ratio"),
        "throughput_ratio_cpu_bound": tp.get("cpu_bound", {}).get("ratio"),
        "throughput_ratio_slower_cognito": tp.get("slower_cognito", {}).get("ratio"),
        "throughput_ratio_by_users_in_flight": {
            str(level["users"]): level["ratio"] for level in tp.get("by_users_in_flight", [])
        },
        "queries": sqlite["queries"],
        "admin_refresh_speedup": refresh["speedup"],
        "admin_refresh_peak_in_flight": refresh["bounded"]["peak_in_flight"],
        "admin_refresh_cap": refresh["cap"],
        "admin_refresh_implementation": refresh["implementation"],
        "machine": rest["machine"],
        "sqlite": {**sqlite, "overhead_ms": overhead},
        "postgresql": (
            {**pg, "overhead_ms": _overhead(pg)}
            if pg
            else {"skipped": f"set {POSTGRES_ENV} to measure PostgreSQL"}
        ),
        "throughput": tp,
        "cold": rest["cold"],
    }
    waits = rest.get("wait") or {}
    results.update(
        {
            # SQLite, as the overhead figures; PostgreSQL's beside them.
            "verify_wait_ratio": (waits.get("sqlite") or {}).get("verify_wait_ratio"),
            "start_wait_ratio": (waits.get("sqlite") or {}).get("start_wait_ratio"),
            "verify_wait_ratio_postgresql": (waits.get("postgresql") or {}).get(
                "verify_wait_ratio"
            ),
            "start_wait_ratio_postgresql": (waits.get("postgresql") or {}).get("start_wait_ratio"),
            "wait": waits,
        }
    )
    storm_results = rest.get("storm") or {}
    budgeted = storm_results.get("with_budget")
    results.update(
        {
            "storm_goodput_ratio": budgeted["goodput_ratio"] if budgeted else None,
            "storm_throttled_calls": budgeted["throttled_calls"] if budgeted else None,
            "storm_stranded_users": budgeted["stranded_users"] if budgeted else None,
            "storm_refusal_ms_p99": (
                (budgeted["refusal_ms"] or {}).get("p99") if budgeted else None
            ),
            "storm_refusal_server_ms_p99": (
                (budgeted.get("refusal_server_ms") or {}).get("p99") if budgeted else None
            ),
            "storm_refusal_measures": REFUSAL_MEASURES,
            "storm": storm_results,
        }
    )
    targets = {
        name: {
            "value": results[name],
            "target": f"{op} {bound}",
            "met": _met(results[name], (op, bound)),
        }
        for name, (op, bound) in TARGETS.items()
    }
    for endpoint, bound in QUERY_TARGETS.items():
        for label, counts in (
            ("sqlite", sqlite["queries"]),
            ("postgresql", (pg or {}).get("queries")),
        ):
            if counts is None:
                continue
            statements = counts[endpoint]
            targets[f"queries.{endpoint}.{label}"] = {
                "value": statements,
                "target": f"<= {bound} statements",
                "met": statements <= bound,
            }
    targets["admin_refresh_peak_in_flight"] = {
        "value": refresh["bounded"]["peak_in_flight"],
        "target": f"<= cap ({refresh['cap']})",
        "met": refresh["bounded"]["peak_in_flight"] <= refresh["cap"],
    }
    results["targets"] = targets
    return results


def print_table(results: dict[str, Any]) -> None:
    def row(*cells: Any) -> None:
        print(f"{cells[0]:<44}" + "".join(f"{cell!s:>12}" for cell in cells[1:]))

    print()
    print(f"cognito_mfa bench — {results['machine']}")
    for label in ("sqlite", "postgresql"):
        phase = results[label]
        if "skipped" in phase:
            print(f"\n[{label}] skipped: {phase['skipped']}")
            continue
        requests, overhead = phase["requests"], phase["overhead_ms"]
        print(
            f"\n[{label}] in-process, {requests['app_verify']['n']} interleaved iterations; "
            f"stub service p50 {phase['stub_service_ms']['p50']} ms; "
            f"load {phase['load_average']['before']}"
        )
        row("request (ms)", "app p50", "base p50", "overhead", "app p99", "base p99")
        for name in ("start", "verify"):
            app, base = requests[f"app_{name}"], requests[f"base_{name}"]
            row(
                f"POST enrollments/{'{id}/verify/' if name == 'verify' else ''}",
                app["p50"],
                base["p50"],
                round(app["p50"] - base["p50"], 3),
                app["p99"],
                base["p99"],
            )
        row("start overhead beside QR rendering (p50)", "", "", overhead["start_ms_p50"])
        row(
            "  same, each request's own QR time out",
            "",
            "",
            overhead["start_beside_qr_in_request_ms_p50"],
        )
        row(
            "CPU-time overhead verify / start beside QR",
            "",
            "",
            overhead["cpu_verify_ms_p50"],
            overhead["cpu_start_ms_p50"],
        )
        qr = phase["qr_render_ms"]
        row(
            "QR render svg+png / svg / png (p50)",
            qr["both"]["p50"],
            qr["svg"]["p50"],
            qr["png"]["p50"],
        )
        row("QR render svg+png inside the start (p50)", phase["qr_render_in_request_ms"]["p50"])
        print(
            "SQL statements (with BEGIN/COMMIT): "
            + ", ".join(
                f"{name} {count} ({phase['queries_captured'][name]})"
                for name, count in phase["queries"].items()
            )
        )
    tp = results["throughput"]
    if "skipped" in tp:
        print(f"\n[throughput] skipped: {tp['skipped']}")
    else:
        print(
            f"\n[throughput] {tp['server']}, PostgreSQL, {tp['concurrency']} users in flight, "
            f"{tp['rounds_per_side']} rounds each of {tp['window_s']} s counted "
            f"after {tp['warmup_s']} s"
        )
        for label, _ in LOADS:
            load = tp[label]
            print(
                f"{label}: stub service {load['stub_service_ms']} ms per call; "
                f"load {load['load_average']['before']}"
            )
            row("", "req/s", "p50 ms", "p99 ms", "errors", "CPU ms/req")
            for kind in ("app", "baseline"):
                side = load[kind]
                cpu = side["cpu_ms_per_request_median"]
                row(
                    f"  {kind}",
                    side["requests_per_s_median"],
                    side["latency_ms_p50_median"],
                    side["latency_ms_p99_median"],
                    side["errors"],
                    round(sum(cpu.values()), 2),
                )
                print(
                    "      CPU per request (ms): "
                    + ", ".join(f"{name} {value}" for name, value in cpu.items())
                )
            row("  ratio app/baseline", load["ratio"])
        print(
            f"cognito_like by users in flight ({LOAD_SWEEP_ROUNDS} rounds a side; "
            f"{tp['concurrency']} is the judged load above)"
        )
        row("", "app req/s", "base req/s", "ratio", "app p99", "base p99", "app CPU/req")
        for level in tp.get("by_users_in_flight", []):
            app, base = level["app"], level["baseline"]
            row(
                f"  {level['users']} users",
                app["requests_per_s_median"],
                base["requests_per_s_median"],
                level["ratio"],
                app["latency_ms_p99_median"],
                base["latency_ms_p99_median"],
                round(sum(app["cpu_ms_per_request_median"].values()), 2),
            )
        for worker in tp["workers"]:
            print(
                f"  worker {worker['pid']}: RSS {worker['rss_mb']} MB, boto3 clients "
                f"{worker['boto3_clients']}, JWKS fetches {worker['jwks_fetches']}"
            )
    refresh = results["sqlite"]["admin_refresh"]
    print(
        f"\n[admin refresh] {refresh['users']} users, AdminGetUser {refresh['service_time_ms']} ms "
        f"each, {refresh['implementation']}"
    )
    row("", "wall s", "peak", "cap")
    row(
        f"bounded (concurrency {refresh['cap']})",
        refresh["bounded"]["wall_s"],
        refresh["bounded"]["peak_in_flight"],
        refresh["cap"],
    )
    row("one at a time", refresh["serial"]["wall_s"], refresh["serial"]["peak_in_flight"], 1)
    row("speedup", refresh["speedup"])
    cold_path = results["cold"]
    print(f"\n[cold] median of {cold_path['runs']} fresh processes (ms)")
    for key in ("django_setup_ms", "import_views_ms", "first_request_ms", "second_request_ms"):
        row(key, cold_path[key])
    print(f"counts after 12 requests: {cold_path['counts_after_12_requests']}")
    print("import time (cumulative ms): " + json.dumps(cold_path["import_time_ms_cumulative"]))
    storm_results = results.get("storm") or {}
    if "skipped" in storm_results or not storm_results:
        print(f"\n[storm] skipped: {storm_results.get('skipped', 'not run')}")
    else:
        first = storm_results["with_budget"]
        print(
            f"\n[storm] {first['users']} users at {first['arrivals_per_s']}/s over "
            f"{first['window_s']} s, {first['server']}, stub quotas {first['stub_quotas']}"
        )
        row("", "goodput", "done/s", "throttled", "stranded", "refused", "refusal p99")
        for label in ("with_budget", "without_budget"):
            run = storm_results[label]
            row(
                f"  {label}",
                run["goodput_ratio"],
                run["completed_per_s"],
                run["throttled_calls"],
                run["stranded_users"],
                run["budget_refusals"],
                (run["refusal_ms"] or {}).get("p99"),
            )
    for label, wait in (results.get("wait") or {}).items():
        requests = wait["requests"]
        print(
            f"\n[wait, {label}] Cognito at {wait['stub_service_ms']['p50']} ms a call, "
            f"{wait['iterations']} interleaved iterations; p50 ms app / baseline: start "
            f"{requests['app_start']['p50']} / {requests['base_start']['p50']} "
            f"(ratio {wait['start_wait_ratio']}), verify {requests['app_verify']['p50']} / "
            f"{requests['base_verify']['p50']} (ratio {wait['verify_wait_ratio']})"
        )
    if storm_results.get("with_budget"):
        run = storm_results["with_budget"]
        print(
            f"  refusal time, server side (gunicorn %(D)s): {run.get('refusal_server_ms')}; "
            f"load generator CPU {run.get('load_generator_cpu_s')} s"
        )
    print("\ntargets:")
    for name, target in results["targets"].items():
        mark = {True: "ok", False: "MISSED", None: "n/a"}[target["met"]]
        print(f"  {name:<40} {target['value']!s:>10}  {target['target']:<22} {mark}")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")


def main() -> None:
    began = time.monotonic()
    info = machine()
    print(
        f"load average at start: {info['load_average_at_start']} on {info['cores']} cores",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="cognito-mfa-bench-") as scratch:
        print("overhead, queries, QR, admin refresh on SQLite ...", flush=True)
        sqlite_env = _env(COGNITO_MFA_BENCH_DATABASE=f"{scratch}/bench.sqlite3")
        sqlite = _phase(["overhead", "--refresh"], sqlite_env)
        pg = None
        with services(
            Path(scratch), os.environ.get(POSTGRES_ENV), os.environ.get(REDIS_ENV)
        ) as found:
            print(f"PostgreSQL: {found['postgres_note']}; Redis: {found['redis_note']}", flush=True)
            postgres_url, redis_url = found["postgres"], found["redis"]
            tp: dict[str, Any] = {"skipped": f"no PostgreSQL: {found['postgres_note']}"}
            storm_results: dict[str, Any] = {
                "skipped": f"PostgreSQL: {found['postgres_note']}; Redis: {found['redis_note']}"
            }
            print("wait ratios, Cognito at 20 ms ...", flush=True)
            waits = {"sqlite": _phase(["wait"], _env(COGNITO_MFA_BENCH_DATABASE=f"{scratch}/w.db"))}
            if postgres_url:
                database_url, drop = _postgres_database(postgres_url, "_wait")
                try:
                    waits["postgresql"] = _phase(
                        ["wait"], _env(COGNITO_MFA_BENCH_DATABASE=database_url)
                    )
                finally:
                    drop()
            if postgres_url:
                database_url, drop = _postgres_database(postgres_url)
                try:
                    print("overhead and queries on PostgreSQL ...", flush=True)
                    pg = _phase(["overhead"], _env(COGNITO_MFA_BENCH_DATABASE=database_url))
                    if not os.environ.get("COGNITO_MFA_BENCH_ONLY_STORM"):
                        print("throughput under gunicorn ...", flush=True)
                        tp = throughput(database_url)
                finally:
                    drop()
                if redis_url:
                    print("enrollment storm, with and without the call budget ...", flush=True)
                    storm_results = storm(postgres_url, redis_url)
        print("cold path ...", flush=True)
        cold_path = cold(_env(COGNITO_MFA_BENCH_DATABASE=f"{scratch}/cold.sqlite3"))
    results = build_results(
        sqlite, pg, throughput=tp, cold=cold_path, machine=info, storm=storm_results, wait=waits
    )
    results["services"] = {
        "postgres": found["postgres_note"],
        "redis": found["redis_note"],
    }
    results["machine"]["load_average_at_end"] = _load()
    results["duration_s"] = round(time.monotonic() - began, 1)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    print_table(results)
    print(f"took {results['duration_s']} s")


if __name__ == "__main__":
    main()
