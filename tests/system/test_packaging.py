"""The built wheel carries everything, and a brand-new site set up from the docs serves the API.

The wheel is built from the files a clone holds, unpacked, and put on ``PYTHONPATH`` of a
``startproject`` site (never the repository), configured only with the code blocks of the
installation page (``docs/installation.md``, the one place the setup is written down); then
``migrate`` and ``runserver`` must work.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import pytest

from cognito_mfa import conf
from tests.support.ports import port_for_child_server
from tests.support.services import require_service

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = REPO / "docs"


def _setup_section() -> str:
    """The installation page: the host-project setup, step by step."""
    return (DOCS / "installation.md").read_text()


FERNET_KEY = "Vb4nU5h2q3sWm8yC0dF6gJ9kL1pR7tX2zA4bE6hN8qM="


def _clean_copy(target: Path) -> None:
    """Copy what a clone of the repository would hold (tracked and unignored files)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in filter(None, listed):
        source = REPO / raw.decode()
        if source.is_file():
            destination = target / raw.decode()
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)


def _build_tools_available() -> bool:
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import setuptools, wheel; assert int(setuptools.__version__.split('.')[0]) >= 69",
        ],
        capture_output=True,
    )
    return probe.returncode == 0


def _doc_blocks() -> dict[str, str]:
    """The ``python`` blocks of the setup page, keyed by the file their first line names."""
    text = _setup_section()
    blocks: dict[str, str] = {}
    for match in re.finditer(r"^( *)```python\n(.*?)^\1```", text, re.S | re.M):
        indent = len(match.group(1))
        code = "\n".join(line[indent:] for line in match.group(2).splitlines())
        first = code.splitlines()[0]
        if first.startswith("# ") and ".py" in first:
            blocks[first[2:].split()[0]] = code + "\n"
    return blocks


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], Any]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_service("setuptools>=69 and wheel", _build_tools_available(), "install the test extras")
    source = tmp_path_factory.mktemp("clone")
    _clean_copy(source)
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            str(source),
            "-w",
            str(dist),
        ],
        check=True,
        timeout=120,
        env={**os.environ, "PIP_NO_INPUT": "1"},
    )
    (built,) = dist.glob("cognito_mfa-*.whl")
    return built


@pytest.mark.multiprocess
def test_wheel_contains_migrations_types_and_templates(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "cognito_mfa/migrations/__init__.py" in names
    assert "cognito_mfa/migrations/0001_initial.py" in names
    assert "cognito_mfa/py.typed" in names
    assert "cognito_mfa/urls.py" in names
    for language in ("de", "fr"):
        # The compiled catalogues, which Django reads (the .po sources come along).
        assert f"cognito_mfa/locale/{language}/LC_MESSAGES/django.mo" in names
        assert f"cognito_mfa/locale/{language}/LC_MESSAGES/django.po" in names
    # Every migration, template and message catalogue of the source tree is in the wheel.
    package = REPO / "cognito_mfa"
    for pattern in ("migrations/*.py", "templates/**/*.html", "locale/*/LC_MESSAGES/*"):
        for path in package.glob(pattern):
            if "__pycache__" not in path.parts:
                assert f"cognito_mfa/{path.relative_to(package).as_posix()}" in names
    assert not any(name.startswith(("tests/", "example_project/")) for name in names)
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "Requires-Dist: Django" in text
    assert "Provides-Extra: test" in text


def _release_tools_available() -> bool:
    probe = subprocess.run([sys.executable, "-c", "import build, twine"], capture_output=True)
    return probe.returncode == 0 and _build_tools_available()


@pytest.mark.multiprocess
def test_the_sdist_and_wheel_of_a_clone_pass_twine_check_strict(tmp_path: Path) -> None:
    """``make dist`` as a release does it: ``python -m build`` on a clone, ``twine check``."""
    require_service("build and twine", _release_tools_available(), "install the test extras")
    source = tmp_path / "clone"
    _clean_copy(source)
    dist = tmp_path / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (sdist,) = dist.glob("cognito_mfa-*.tar.gz")
    (wheel,) = dist.glob("cognito_mfa-*.whl")
    checked = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(sdist), str(wheel)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("PASSED") == 2, checked.stdout
    root = sdist.name.removesuffix(".tar.gz")
    with tarfile.open(sdist) as archive:
        names = set(archive.getnames())
    for name in ("LICENSE", "CHANGELOG.md", "SECURITY.md", "README.md", "setup.cfg"):
        assert f"{root}/{name}" in names, name
    for language in ("de", "fr"):
        assert f"{root}/cognito_mfa/locale/{language}/LC_MESSAGES/django.mo" in names
    wheel_names = set(zipfile.ZipFile(wheel).namelist())
    license_file = next(n for n in wheel_names if n.endswith(".dist-info/licenses/LICENSE"))
    assert "BSD 3-Clause" in zipfile.ZipFile(wheel).read(license_file).decode()


@pytest.mark.multiprocess
def test_a_new_site_set_up_from_the_docs_migrates_and_serves(wheel: Path, tmp_path: Path) -> None:
    site_packages = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site_packages)
    host = tmp_path / "host"
    host.mkdir()
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "hostsite", str(host)],
        check=True,
        timeout=60,
    )
    blocks = _doc_blocks()
    assert set(blocks) >= {"settings.py", "urls.py"}, blocks.keys()
    for name in ("settings.py", "urls.py"):
        with (host / "hostsite" / name).open("a") as target:
            target.write("\n" + blocks[name])

    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "COGNITO_MFA_", "PYTHON"))
    }
    env.update(
        PYTHONPATH=str(site_packages),
        PYTHONDONTWRITEBYTECODE="1",
        COGNITO_MFA_REGION="eu-west-1",
        COGNITO_MFA_USER_POOL_ID="eu-west-1_HostSite1",
        COGNITO_MFA_APP_CLIENT_IDS="hostsite-client",
        COGNITO_MFA_ENCRYPTION_KEYS=FERNET_KEY,
    )

    def manage(*args: str, unset: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=host,
            env={key: value for key, value in env.items() if key != unset},
            capture_output=True,
            text=True,
            timeout=120,
        )

    where = subprocess.run(
        [sys.executable, "-c", "import cognito_mfa; print(cognito_mfa.__file__)"],
        cwd=host,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.strip().startswith(str(site_packages)), where.stdout

    checked = manage("check")
    assert checked.returncode == 0, checked.stderr
    # A host that forgets to say which pool it uses is told so, rather than quietly checking
    # every token against the docs' example pool (which answers 401 to all of them).
    for name in ("COGNITO_MFA_REGION", "COGNITO_MFA_USER_POOL_ID"):
        forgotten = manage("check", unset=name)
        assert forgotten.returncode != 0, f"{name} unset, yet the site starts"
        assert name in forgotten.stderr
    migrated = manage("migrate", "--no-input")
    assert migrated.returncode == 0, migrated.stderr
    assert "Applying cognito_mfa.0001_initial... OK" in migrated.stdout

    port = port_for_child_server()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=host,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}/api/mfa/"
        deadline = time.monotonic() + 30
        while True:
            try:
                status, headers, body = _get(url + "status/")
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "runserver did not answer"
                time.sleep(0.2)
        assert status == 401
        assert body["code"] == "not_authenticated"
        assert set(body) == {"code", "detail"}
        assert headers["Content-Type"] == "application/json"
        status, _, body = _get(url + "enrollments/", {"Authorization": "Bearer not-a-token"})
        assert (status, body["code"]) == (401, "token_invalid")
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_every_setting_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    names = [name for name in vars(conf.AppSettings) if name.isupper()]
    names.remove("ISSUER_URL")  # derived from REGION and USER_POOL_ID, not a setting
    assert len(names) > 20
    for name in [*names, "THROTTLE_RATES", "THROTTLE_CACHE"]:
        assert f"| `COGNITO_MFA_{name}` |" in text, name


def test_every_signal_and_error_code_is_documented() -> None:
    from cognito_mfa import exceptions, signals

    signal_page = (DOCS / "signals.md").read_text()
    for name, value in vars(signals).items():
        if type(value).__name__ == "Signal":
            assert f"| `{name}` |" in signal_page, name
    api_page = (DOCS / "api.md").read_text()
    for value in vars(exceptions).values():
        is_error = isinstance(value, type) and issubclass(value, exceptions.CognitoMFAError)
        if is_error and value is not exceptions.CognitoMFAError:
            assert f"| `{value.code}` | {value.status} |" in api_page, value


def test_the_readme_receiver_is_the_tested_one() -> None:
    """The README's receiver example is the installation page's, which the tests run."""
    readme = README.read_text()
    block = _doc_blocks()["accounts/receivers.py"]
    assert f"```python\n{block}```" in readme
    assert len(readme.splitlines()) <= 150
    for command in ("make demo", "make test"):
        assert command in readme


def test_the_adapter_imports_before_django_is_set_up() -> None:
    """A host subclasses DefaultAdapter in its own module, which may be imported early (from
    settings, or before ``django.setup()``): importing it must not touch the models."""
    environment = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    probe = subprocess.run(
        [sys.executable, "-c", "import cognito_mfa.adapter, cognito_mfa.authentication"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr[-2000:]


RECEIVER_PROBE = """
import gc

import django

django.setup()

from django.contrib.auth import get_user_model

from cognito_mfa.models import Enrollment
from cognito_mfa.signals import software_token_verified

gc.collect()  # what a long-running worker does sooner or later
alice = get_user_model()(username="alice", email="alice@example.com")
for user in (alice, None):  # None: a sign-in challenge that names no site account
    software_token_verified.send(
        sender=Enrollment, enrollment=None, user=user, request=None, source="api",
        actor=user, friendly_device_name="Work phone",
    )
"""


def test_the_documented_signal_receiver_is_called_with_debug_off(tmp_path: Path) -> None:
    """The receiver example, put where the installation page says, is still connected in production.

    Signals hold receivers by weak reference: a function defined inside ``ready()`` dies when
    ``ready()`` returns, except under ``DEBUG = True``, where Django's argument check happens
    to keep it alive. So the example must work with ``DEBUG = False``.
    """
    blocks = _doc_blocks()
    app_files = {name: code for name, code in blocks.items() if "/" in name}
    assert app_files, (
        "the installation page shows the receiver in a module of an app, imported in ready()"
    )
    (app,) = {name.split("/")[0] for name in app_files}
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "hostsite", str(tmp_path)],
        check=True,
        timeout=60,
    )
    subprocess.run(
        [sys.executable, "-m", "django", "startapp", app],
        check=True,
        timeout=60,
        cwd=tmp_path,
    )
    for name, code in app_files.items():
        (tmp_path / name).write_text(code)
    outbox = tmp_path / "outbox"
    with (tmp_path / "hostsite" / "settings.py").open("a") as settings:
        settings.write("\n" + blocks["settings.py"])
        settings.write(
            f"\nINSTALLED_APPS += [{app!r}]\nDEBUG = False\nALLOWED_HOSTS = ['localhost']\n"
            # Django 6.1's project template configures MAILERS (and then refuses the older
            # EMAIL_BACKEND setting); before 6.1 the mailer is EMAIL_BACKEND.
            "if 'MAILERS' in globals():\n"
            "    MAILERS = {'default': {\n"
            "        'BACKEND': 'django.core.mail.backends.filebased.EmailBackend',\n"
            f"        'OPTIONS': {{'file_path': {str(outbox)!r}}},\n"
            "    }}\n"
            "else:\n"
            "    EMAIL_BACKEND = 'django.core.mail.backends.filebased.EmailBackend'\n"
            f"    EMAIL_FILE_PATH = {str(outbox)!r}\n"
        )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "COGNITO_MFA_", "PYTHON"))
    }
    env.update(
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]),
        PYTHONDONTWRITEBYTECODE="1",
        DJANGO_SETTINGS_MODULE="hostsite.settings",
        COGNITO_MFA_REGION="eu-west-1",
        COGNITO_MFA_USER_POOL_ID="eu-west-1_HostSite1",
        COGNITO_MFA_APP_CLIENT_IDS="hostsite-client",
        COGNITO_MFA_ENCRYPTION_KEYS=FERNET_KEY,
    )
    probe = subprocess.run(
        [sys.executable, "-c", RECEIVER_PROBE],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr[-2000:]
    sent = [path.read_text() for path in outbox.glob("*")] if outbox.exists() else []
    assert len(sent) == 1, "the receiver was not called (or not once)"
    assert "alice@example.com" in sent[0]
    assert "Work phone" in sent[0]


def _in_venv(venv: Path, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "python"), *args],
        capture_output=True,
        text=True,
        check=False,
        **kwargs,
    )


def _http(
    method: str, url: str, body: dict[str, Any] | None, token: str
) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.multiprocess
def test_a_fresh_virtualenv_keeps_its_django_and_a_new_site_enrolls_a_user(
    tmp_path: Path, moto_server: str
) -> None:
    """What a site on this Django and Python does: a virtualenv holding its Django, then
    ``pip install <clone>``; the Django stays, and a ``startproject`` site set up from the
    installation page migrates, serves and enrolls a user against Cognito (moto's server) over
    HTTP."""
    import django

    from tests.support.cognito import create_pool, fresh_code, moto_server_client

    clone = tmp_path / "clone"
    _clean_copy(clone)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = ("-m", "pip", "install", "--quiet", "--disable-pip-version-check")
    held = _in_venv(venv, *pip, f"Django=={django.__version__}", timeout=300)
    assert held.returncode == 0, held.stderr[-2000:]
    installed = _in_venv(venv, *pip, str(clone), timeout=600)
    assert installed.returncode == 0, installed.stderr[-2000:]
    version = _in_venv(venv, "-c", "import django; print(django.__version__)")
    assert version.stdout.strip() == django.__version__, "pip replaced the site's Django"

    pool = create_pool(moto_server_client(moto_server))
    host = tmp_path / "host"
    host.mkdir()
    started = _in_venv(venv, "-m", "django", "startproject", "hostsite", str(host), timeout=60)
    assert started.returncode == 0, started.stderr
    blocks = _doc_blocks()
    for name in ("settings.py", "urls.py"):
        with (host / "hostsite" / name).open("a") as target:
            target.write("\n" + blocks[name])
    with (host / "hostsite" / "settings.py").open("a") as target:
        # What the test adds: Cognito is moto's server on loopback, keys from there too.
        target.write(
            f"\nCOGNITO_MFA_ENDPOINT_URL = {moto_server!r}\n"
            f"COGNITO_MFA_JWKS_URL = {f'{moto_server}/{pool.pool_id}/.well-known/jwks.json'!r}\n"
        )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "COGNITO_MFA_", "PYTHON", "AWS_"))
    }
    env.update(
        PYTHONDONTWRITEBYTECODE="1",
        COGNITO_MFA_REGION="us-east-1",
        COGNITO_MFA_USER_POOL_ID=pool.pool_id,
        COGNITO_MFA_APP_CLIENT_IDS=pool.client_id,
        COGNITO_MFA_ENCRYPTION_KEYS=FERNET_KEY,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    migrated = _in_venv(venv, "manage.py", "migrate", "--no-input", cwd=host, env=env, timeout=120)
    assert migrated.returncode == 0, migrated.stderr[-2000:]

    port = port_for_child_server()
    server = subprocess.Popen(
        [str(venv / "bin" / "python"), "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=host,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}/api/mfa/"
        pool.create_user("hana", email="hana@example.com")
        token = pool.access_token("hana")
        deadline = time.monotonic() + 30
        while True:
            try:
                status, body = _http("POST", base + "enrollments/", {}, token)
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "runserver did not answer"
                time.sleep(0.2)
        assert status == 201, body
        assert body["status"] == "pending"
        code = fresh_code(body["secret_code"])
        status, verified = _http(
            "POST", f"{base}enrollments/{body['id']}/verify/", {"user_code": code}, token
        )
        assert (status, verified["status"], verified["mfa_enabled"]) == (200, "verified", True)
        state = pool.client.get_user(AccessToken=token)
        assert state["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA"]
    finally:
        server.terminate()
        server.wait(timeout=10)
