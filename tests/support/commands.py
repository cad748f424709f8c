"""The management commands as the tests run them: in-process, or as an operator's shell does."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from django.core.management import CommandError, call_command

REPO = Path(__file__).resolve().parents[2]


def run_verify_software_token(*args: str) -> tuple[int, str, str]:
    """Run verify_software_token in-process; return (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_software_token", *args, stdout=out, stderr=err)
    except CommandError as stop:  # called from Python: the CLI's exit code, no SystemExit
        return stop.returncode, out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def manage_py(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py`` in a fresh process, as an operator's shell does."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "DJANGO_SETTINGS_MODULE": "tests.settings"}
    return subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
