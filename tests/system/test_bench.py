"""The benchmark keeps working and its committed results carry the figures tracked run to run
(``make bench`` itself takes minutes and PostgreSQL; the numbers are in ``bench/README.md``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRACKED = (
    "verify_overhead_ms_p50",
    "start_overhead_ms_p50",
    "qr_render_ms_p50",
    "throughput_ratio",
    "queries",
    "admin_refresh_speedup",
    "admin_refresh_peak_in_flight",
    "admin_refresh_cap",
    "machine",
    "storm_goodput_ratio",
    "storm_throttled_calls",
    "storm_stranded_users",
    "storm_refusal_ms_p99",
    "storm_refusal_server_ms_p99",
    "verify_wait_ratio",
    "start_wait_ratio",
)


def test_committed_results_carry_the_tracked_figures() -> None:
    results = json.loads((ROOT / "bench" / "results.json").read_text())
    assert set(TRACKED) <= set(results)
    for key in TRACKED:
        if key not in ("queries", "machine"):
            assert isinstance(results[key], int | float), key
    assert {"start", "verify", "status", "list"} <= set(results["queries"])
    assert {"cores", "python", "django"} <= set(results["machine"])
    assert results["admin_refresh_peak_in_flight"] <= results["admin_refresh_cap"]


def _inprocess(phase: str, tmp_path: Path, **env_values: str) -> dict[str, Any]:
    """Run ``python -m bench.inprocess <phase>`` on a SQLite file; return its JSON."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "COGNITO_MFA_BENCH_DATABASE": str(tmp_path / f"{phase}.sqlite3"),
        **env_values,
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    completed = subprocess.run(
        [sys.executable, "-m", "bench.inprocess", phase],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def test_the_in_process_phase_runs_and_reports_every_figure(tmp_path: Path) -> None:
    phase = _inprocess("overhead", tmp_path, COGNITO_MFA_BENCH_ITERATIONS="5")
    names = {"app_start", "app_verify", "base_start", "base_verify", "app_start_beside_qr"}
    assert names <= set(phase["requests"])
    assert all(phase["requests"][name]["n"] == 5 for name in names)
    assert phase["qr_render_in_request_ms"]["n"] == 5
    assert phase["database"] == "sqlite"
    budgets = {"start": 6, "verify": 6, "status": 2, "list": 2}
    assert all(phase["queries"][name] <= budget for name, budget in budgets.items())


def test_the_wait_phase_alternates_app_and_baseline_with_cognito_at_20_ms(
    tmp_path: Path,
) -> None:
    phase = _inprocess("wait", tmp_path, COGNITO_MFA_BENCH_WAIT_ITERATIONS="4")
    requests = phase["requests"]
    assert all(requests[name]["n"] == 4 for name in requests)
    assert phase["stub_service_ms"]["p50"] >= 20  # every call waited for "Cognito"
    assert requests["base_start"]["p50"] >= 20
    assert requests["base_verify"]["p50"] >= 40
    ratio = requests["app_verify"]["p50"] / requests["base_verify"]["p50"]
    assert phase["verify_wait_ratio"] == round(ratio, 3)


def test_the_storm_reads_refusal_times_from_gunicorns_access_log(tmp_path: Path) -> None:
    from bench.run import ACCESS_LOG_FORMAT, _refusal_times_ms

    assert "%(D)s" in ACCESS_LOG_FORMAT
    assert ACCESS_LOG_FORMAT.startswith("%(s)s ")
    log = tmp_path / "access.log"
    warm_up = "201 25000 /api/mfa/enrollments/\n429 1500 /api/mfa/enrollments/\n"
    log.write_text(warm_up + "429 800 /api/mfa/enrollments/e1/verify/\n")
    missing = tmp_path / "missing.log"
    assert _refusal_times_ms([log, missing], [0, 0]) == [1.5, 0.8]
    # The warm-up's lines (the first bytes of each log) are left out.
    assert _refusal_times_ms([log, missing], [len(warm_up), 0]) == [0.8]


def test_a_gunicorn_that_does_not_come_up_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import run

    started: list[Any] = []
    original = run._Process.__init__

    def recording(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        started.append(self)

    def never_ready(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("no line matching")

    monkeypatch.setattr(run._Process, "__init__", recording)
    monkeypatch.setattr(run._Process, "wait_for", never_ready)
    with pytest.raises(RuntimeError):
        run._gunicorn(run._env(), ["--workers", "1"])
    assert len(started) == 1
    assert started[0].popen.poll() is not None  # stopped, not left running


class _SPAEndpoints(BaseHTTPRequestHandler):
    """Answers the app's start and verify paths after a short wait, noting who asked."""

    protocol_version = "HTTP/1.1"  # keep-alive, as gunicorn
    disable_nagle_algorithm = True  # headers and body go in two writes
    seen: ClassVar[list[tuple[str, str]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(0.01)
        self.seen.append((self.path, self.headers["Authorization"]))
        started = self.path == "/api/mfa/enrollments/"
        body = json.dumps({"id": "e1"} if started else {"status": "verified"}).encode()
        self.send_response(201 if started else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_load_round_counts_its_steady_state_window_only() -> None:
    from bench.load import run_round

    _SPAEndpoints.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SPAEndpoints)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    samples: list[float] = []
    began = time.monotonic()
    try:
        result = run_round(
            "127.0.0.1",
            server.server_address[1],
            "app",
            [f"token-{index}" for index in range(6)],
            concurrency=3,
            window_s=0.6,
            warmup_s=0.3,
            sample=lambda: samples.append(time.monotonic()) or len(samples),
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result["errors"] == 0
    assert result["samples"] == (1, 2)
    # The samples bracket the window: never before it opens (0.3 s in) or closes (0.9 s in),
    # and the second not half a window later than the window's length.
    assert samples[0] >= began + 0.3
    assert samples[1] >= began + 0.9
    assert samples[1] - samples[0] <= 0.9
    # 3 users, ~10 ms a request: about 180 requests in the window, more in the whole round.
    answered = len(_SPAEndpoints.seen)
    assert 60 <= result["requests"] < answered
    assert result["requests_per_s"] == round(result["requests"] / 0.6, 1)
    # Every token was used (each user cycles through its own share), none by two users.
    assert {token for _, token in _SPAEndpoints.seen} == {f"Bearer token-{i}" for i in range(6)}


def test_the_stub_throttles_past_cognitos_quota_per_category() -> None:
    import boto3
    import botocore.config
    import botocore.exceptions
    import pytest

    from bench.stub import CognitoStub, Quotas

    now = [0.0]  # the bucket's clock stands still unless the test moves it
    stub = CognitoStub().start()
    stub.quotas = Quotas(clock=lambda: now[0])
    try:
        stub.quotas.set({"UserResourceUpdate": 5, "UserRead": 50})
        client = boto3.client(
            "cognito-idp",
            region_name="us-east-1",
            endpoint_url=stub.url,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            config=botocore.config.Config(retries={"total_max_attempts": 1}),
        )
        for _ in range(5):  # the bucket holds one second's calls
            client.associate_software_token(AccessToken="t")
        with pytest.raises(botocore.exceptions.ClientError) as throttled:
            client.verify_software_token(AccessToken="t", UserCode="123456")
        assert throttled.value.response["Error"]["Code"] == "TooManyRequestsException"
        client.get_user(AccessToken="t")  # another category, its own bucket
        now[0] += 0.2  # 5/s: one token back, and only one
        client.verify_software_token(AccessToken="t", UserCode="123456")
        with pytest.raises(botocore.exceptions.ClientError):
            client.verify_software_token(AccessToken="t", UserCode="123456")
        now[0] += 10  # a long pause refills one second's calls, no more
        for _ in range(4):
            client.associate_software_token(AccessToken="t")
        client.verify_software_token(AccessToken="t", UserCode="123456")
        with pytest.raises(botocore.exceptions.ClientError):
            client.associate_software_token(AccessToken="t")
        assert stub.stats.snapshot()["throttled"] == {
            "VerifySoftwareToken": 2,
            "AssociateSoftwareToken": 1,
        }
    finally:
        stub.stop()
