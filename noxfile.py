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
    # The browser pair also builds the docs site it opens (tests/test_docs_browser.py).
    extras = "test,docs" if browser else "test"
    session.install("-e", f".[{extras}]", f"Django~={django}.0")
    session.run(
        "python", "-c", "import django, sys; print('Django', django.__version__, sys.version)"
    )
    markers = [] if browser else ["-m", "not browser"]
    session.run("pytest", *markers, *session.posargs)
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
