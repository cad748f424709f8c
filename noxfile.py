"""The test matrix: one session per supported (Python, Django) pair, each in its own virtualenv.

``nox`` runs them all (``make test`` does); ``nox -t py3.13`` or ``make test PY=3.13`` runs one
pair; ``nox -l`` lists them. Interpreters come from this machine only (pyenv's versions, then
Debian's ``/usr/bin/pythonX.Y``, then ``PATH``), never from a download. A pair whose
interpreter is missing is skipped with a line saying so, and fails the run under ``CI=true``.

PostgreSQL: set ``COGNITO_MFA_TEST_POSTGRES_URL`` (``.ci/run`` does) and the pairs marked for
it run the suite a second time there; under ``CI=true`` it is required.
"""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

import nox

IN_CI = os.environ.get("CI", "").lower() == "true"

nox.options.default_venv_backend = "venv"
nox.options.download_python = "never"
nox.options.error_on_missing_interpreters = IN_CI

# (Python, Django, also on PostgreSQL, also in the browser). Django 6 needs Python 3.12+.
PAIRS = [
    ("3.11", "5.2", True, False),
    ("3.12", "6.0", False, False),
    ("3.13", "6.1", True, True),
]


def find_interpreter(version: str) -> str:
    """Return the path of a Python ``version`` (``"3.13"``) on this machine, else ``version``
    itself (nox then reports the interpreter as missing)."""
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    # The newest patch release pyenv holds, then Debian's, then one on PATH. pyenv's shims
    # answer only for the versions pyenv has activated, so they are not asked.
    pyenv = sorted(
        glob.glob(f"{pyenv_root}/versions/{version}.*/bin/python{version}"),
        key=lambda path: [
            int(part) for part in path.split("/versions/")[1].split("/")[0].split(".")
        ],
    )
    on_path = shutil.which(f"python{version}")
    candidates = [*reversed(pyenv), f"/usr/bin/python{version}"]
    if on_path and "/shims/" not in on_path:
        candidates.append(on_path)
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    return version


def _run_suite(session: nox.Session, django: str, *, postgres: bool, browser: bool) -> None:
    # The browser pair also builds the docs site it opens (tests/system/test_docs_browser.py).
    extras = "test,docs" if browser else "test"
    session.install("-e", f".[{extras}]", f"Django~={django}.0")
    session.run(
        "python", "-c", "import django, sys; print('Django', django.__version__, sys.version)"
    )
    markers = [] if browser else ["-m", "not browser"]
    redis_db = os.environ.get("COGNITO_MFA_TEST_REDIS_DB")
    redis_url = os.environ.get("COGNITO_MFA_TEST_REDIS_URL")
    if redis_db and redis_url:
        session.env["COGNITO_MFA_TEST_REDIS_URL"] = f"{redis_url.rsplit('/', 1)[0]}/{redis_db}"
    # The slowest tests in every log: where a CI run's time goes, when it nears its bound.
    timing = ["--durations=20", "--durations-min=2"]
    session.run("pytest", *markers, *timing, *session.posargs)
    if not postgres:
        return
    url = os.environ.get("COGNITO_MFA_TEST_POSTGRES_URL")
    if not url:
        if IN_CI:
            session.error("CI=true: PostgreSQL is required; set COGNITO_MFA_TEST_POSTGRES_URL")
        session.log("PostgreSQL pass skipped: set COGNITO_MFA_TEST_POSTGRES_URL to run it")
        return
    session.log("the suite again on PostgreSQL")
    session.run(
        "pytest",
        "-m",
        "not browser and not multiprocess",
        *timing,
        *session.posargs,
        env={
            "COGNITO_MFA_TEST_DATABASE_URL": url,
            # Each pair its own test database, so two pairs may run side by side.
            "COGNITO_MFA_TEST_DB_NAME": "test_cognito_mfa_django" + django.replace(".", "_"),
        },
    )


def _define(python: str, django: str, postgres: bool, browser: bool) -> None:
    @nox.session(
        name=f"tests-{python}-django{django}",
        python=find_interpreter(python),
        tags=["tests", f"py{python}"],
    )
    def tests(session: nox.Session) -> None:
        _run_suite(session, django, postgres=postgres, browser=browser)

    tests.__doc__ = (
        f"The suite on Python {python} with Django {django}"
        + (", again on PostgreSQL" if postgres else "")
        + (", browser tests included" if browser else "")
    )


for _pair in PAIRS:
    _define(*_pair)


def run_side_by_side(tags: list[str], pytest_args: list[str]) -> int:
    """Run the selected sessions at the same time, each into a log of its own, then print the
    logs in order; return non-zero if any session failed.

    The suite is mostly one busy core per session, so on a machine with two cores the pairs
    finish in about half the time they take one after another. Their virtualenvs are made
    first, one at a time (``nox --install-only``): two installs of this checkout at once would
    write the same build metadata into it.
    """
    import subprocess
    import sys
    import tempfile
    import time

    selected = [
        f"tests-{python}-django{django}"
        for python, django, *_ in PAIRS
        if not tags or f"py{python}" in tags
    ]
    nox_command = [sys.executable, "-m", "nox"]
    installed = subprocess.run([*nox_command, "--install-only", "-s", *selected], check=False)
    if installed.returncode:
        return installed.returncode
    logs = Path(tempfile.mkdtemp(prefix="cognito-mfa-nox-"))
    began = time.monotonic()
    running = {}
    for index, name in enumerate(selected):
        log = (logs / f"{name}.log").open("w")
        # Each session its own Redis database: the throttle and call-budget tests share keys.
        env = dict(os.environ, COGNITO_MFA_TEST_REDIS_DB=str(index + 1))
        running[name] = (
            subprocess.Popen(
                [*nox_command, "-R", "-s", name, "--", *pytest_args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            ),
            log,
        )
    failed = []
    for name, (process, log) in running.items():
        process.wait()
        log.close()
        print((logs / f"{name}.log").read_text(), flush=True)
        if process.returncode:
            failed.append(name)
    print(f"sessions side by side: {len(selected)} in {time.monotonic() - began:.0f} s")
    for name in selected:
        print(f"  {name}: {'failed' if name in failed else 'passed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    import sys

    # python noxfile.py [-t=py3.13 ...] [-- pytest arguments]
    arguments = sys.argv[1:]
    split = arguments.index("--") if "--" in arguments else len(arguments)
    chosen = [arg.removeprefix("-t=") for arg in arguments[:split]]
    sys.exit(run_side_by_side(chosen, arguments[split + 1 :]))
