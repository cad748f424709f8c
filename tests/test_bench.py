"""The benchmark keeps working and its committed results carry the figures tracked run to run
(``make bench`` itself takes a minute and PostgreSQL; the numbers are in ``bench/README.md``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
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


def test_the_in_process_phase_runs_and_reports_every_figure(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "COGNITO_MFA_BENCH_ITERATIONS": "5",
        "COGNITO_MFA_BENCH_DATABASE": str(tmp_path / "bench.sqlite3"),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    completed = subprocess.run(
        [sys.executable, "-m", "bench.inprocess", "overhead"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    phase = json.loads(completed.stdout.strip().splitlines()[-1])
    names = {"app_start", "app_verify", "base_start", "base_verify", "app_start_beside_qr"}
    assert names <= set(phase["requests"])
    assert all(phase["requests"][name]["n"] == 5 for name in names)
    assert phase["qr_render_in_request_ms"]["n"] == 5
    assert phase["database"] == "sqlite"
    budgets = {"start": 6, "verify": 6, "status": 2, "list": 2}
    assert all(phase["queries"][name] <= budget for name, budget in budgets.items())
