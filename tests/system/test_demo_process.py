"""``make demo``'s entry point as a real process: it serves the page and the admin, takes a
user's double-clicked start on its SQLite file, then stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from example_project.demo import ADMIN_USERNAME, DEMO_USERS, READY_USER

pytestmark = pytest.mark.multiprocess

ROOT = Path(__file__).resolve().parents[2]
START_BUDGET = 60.0
STOP_BUDGET = 10.0
SIMULTANEOUS_STARTS = 6


def wait_for_banner(stdout_path: Path, process: subprocess.Popen[bytes], deadline: float) -> int:
    """Return the port the demo prints once it listens (``--port 0``: the kernel's pick, so
    no other server can hold it; a port probed beforehand could be handed to the demo's own
    moto server first)."""
    while True:
        found = re.search(r"Open http://127\.0\.0\.1:(\d+)/", stdout_path.read_text())
        if found:
            return int(found.group(1))
        if process.poll() is not None:
            pytest.fail(f"the demo exited early with status {process.returncode}")
        if time.monotonic() > deadline:
            pytest.fail(f"the demo printed no address within {START_BUDGET:.0f} s")
        time.sleep(0.25)


def simultaneous_starts(base: str) -> list[tuple[int, dict[str, object]]]:
    """Sign the ready demo user in and send their enrollment starts all at once."""
    site = requests.Session()
    site.get(base + "/", timeout=5)
    signed_in = site.post(
        base + "/demo/sign-in/",
        json={"username": READY_USER.username, "password": READY_USER.password},
        headers={"X-CSRFToken": site.cookies["csrftoken"]},
        timeout=10,
    )
    assert signed_in.status_code == 200, signed_in.text
    bearer = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}

    def start(_: int) -> tuple[int, dict[str, object]]:
        answer = requests.post(base + "/api/mfa/enrollments/", json={}, headers=bearer, timeout=30)
        is_json = answer.headers.get("Content-Type", "").startswith("application/json")
        return answer.status_code, answer.json() if is_json else {"html": answer.text[:200]}

    with ThreadPoolExecutor(SIMULTANEOUS_STARTS) as pool:
        return list(pool.map(start, range(SIMULTANEOUS_STARTS)))


def test_demo_serves_page_and_admin_then_stops_on_ctrl_c(tmp_path: Path) -> None:
    env = {
        name: value
        for name, value in os.environ.items()
        # A real pool's settings or the test runner's settings module must not leak in.
        if not (name.startswith("COGNITO_MFA_") and not name.startswith("COGNITO_MFA_TEST_"))
        and name != "DJANGO_SETTINGS_MODULE"
    }
    env.update(
        EXAMPLE_DB_PATH=str(tmp_path / "demo.sqlite3"),
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    stdout_path, stderr_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    started = time.monotonic()
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "example_project.demo", "--port", "0"],
            cwd=ROOT,
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
        try:
            port = wait_for_banner(stdout_path, process, started + START_BUDGET)
            ready_after = time.monotonic() - started
            base = f"http://127.0.0.1:{port}"
            page = requests.get(base + "/", timeout=5)
            assert page.status_code == 200
            assert "cognito_mfa demo" in page.text
            assert requests.get(base + "/static/example_project/app.js", timeout=5).ok

            session = requests.Session()
            login = session.get(base + "/admin/login/", timeout=5)
            assert login.status_code == 200
            assert "csrfmiddlewaretoken" in login.text
            assert session.get(base + "/static/admin/css/base.css", timeout=5).ok

            # The printed admin password opens the admin.
            banner = stdout_path.read_text()
            match = re.search(rf"as {ADMIN_USERNAME} / (\S+)", banner)
            assert match, banner
            signed_in = session.post(
                base + "/admin/login/?next=/admin/",
                data={
                    "username": ADMIN_USERNAME,
                    "password": match.group(1),
                    "csrfmiddlewaretoken": session.cookies["csrftoken"],
                },
                headers={"Referer": base + "/admin/login/"},
                timeout=10,
            )
            assert signed_in.url == base + "/admin/"
            assert "Site administration" in signed_in.text

            # A user's starts arriving together (two tabs, a double click) on the demo's SQLite
            # file: each is answered in JSON, never by a locked database's 500.
            for status, body in simultaneous_starts(base):
                assert status in (201, 409, 429), (status, body)
                assert body.get("code") or body.get("id"), body

            process.send_signal(signal.SIGINT)
            stopping = time.monotonic()
            process.wait(timeout=STOP_BUDGET)
            stopped_after = time.monotonic() - stopping
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    out, err = stdout_path.read_text(), stderr_path.read_text()
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert f"Open http://127.0.0.1:{port}/" in out
    for user in DEMO_USERS:
        assert f"{user.username} / {user.password}" in out
    assert "Stopping." in out
    assert ready_after < START_BUDGET
    assert stopped_after < 5, f"took {stopped_after:.1f} s to stop"
