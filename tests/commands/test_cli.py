"""The commands as an operator's scripts run them: argparse's errors, unusable settings, -v 0."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from cognito_mfa import crypto
from cognito_mfa.models import Enrollment
from tests.support.commands import manage_py, run_verify_software_token

SECRET = "eyJraWQiOiJTRUNSRVQtVE9LRU4tVkFMVUUifQ.c2VjcmV0.c2ln"

# Command lines argparse itself refuses; each carries a credential where a typo put it.
PARSE_ERRORS = {
    "misspelt option": (["--sesion", SECRET, "--user-code", "123456"], "--sesion"),
    "misspelt option with =": ([f"--acces-token={SECRET}", "--user-code", "123456"], "--acces"),
    "stray value": (["--session", "s" * 30, "--user-code", "123456", SECRET], "unrecognized"),
    "ambiguous prefix with =": ([f"--s={SECRET}", "--user-code", "123456"], "ambiguous"),
    "invalid choice": (["--generate-cli-skeleton", SECRET], "--generate-cli-skeleton"),
    "flag given a value": ([f"--no-color={SECRET}", "--user-code", "123456"], "--no-color"),
    "verbosity glued to a value": ([f"-v{SECRET}"], "--verbosity"),
    "missing value": (["--user-code", "123456", "--access-token"], "--access-token"),
}


@pytest.mark.parametrize(("argv", "hint"), list(PARSE_ERRORS.values()), ids=list(PARSE_ERRORS))
def test_parse_errors_on_the_command_line_exit_252_without_echo(argv: list[str], hint: str) -> None:
    # The AWS CLI answers argparse's errors with 252, like its other parameter errors.
    done = manage_py("verify_software_token", *argv)
    assert done.returncode == 252, done.stderr[-400:]
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert hint in done.stderr
    assert "usage: manage.py verify_software_token" in done.stderr
    assert SECRET not in done.stderr
    assert SECRET[:20] not in done.stderr


@pytest.mark.parametrize(("argv", "hint"), list(PARSE_ERRORS.values()), ids=list(PARSE_ERRORS))
def test_parse_errors_under_call_command_do_not_echo(argv: list[str], hint: str) -> None:
    with pytest.raises(CommandError) as raised:
        call_command("verify_software_token", *argv, stdout=io.StringIO(), stderr=io.StringIO())
    assert raised.value.returncode == 252
    assert hint in str(raised.value)
    assert SECRET[:20] not in str(raised.value)


@pytest.mark.parametrize(
    ("setting", "value"),
    [("COGNITO_MFA_REGION", None), ("COGNITO_MFA_ENDPOINT_URL", "not a url")],
)
def test_a_client_the_settings_cannot_build_exits_253(
    settings: Any, monkeypatch: pytest.MonkeyPatch, setting: str, value: Any
) -> None:
    # No region anywhere, or an endpoint that is no URL: boto3 builds no client and nothing is
    # sent. The AWS CLI exits 253 for a configuration it cannot use; a traceback exits 1.
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    setattr(settings, setting, value)
    code, out, err = run_verify_software_token("--access-token", SECRET, "--user-code", "123456")
    assert code == 253, err
    assert out == ""
    assert err.startswith("\nThe Cognito client could not be built from the settings: ")
    assert SECRET not in err


@pytest.mark.django_db
@pytest.mark.parametrize("command", ["cleanup_enrollments", "rotate_encryption_keys"])
def test_housekeeping_commands_print_nothing_at_verbosity_0(command: str) -> None:
    # Django's --verbosity 0 means no output: from cron, a run that went well mails nothing.
    out = io.StringIO()
    call_command(command, verbosity=0, stdout=out)
    assert out.getvalue() == ""
    out = io.StringIO()
    call_command(command, stdout=out)
    assert out.getvalue() != ""


@pytest.mark.django_db
def test_a_failure_still_speaks_at_verbosity_0(settings: Any) -> None:
    now = timezone.now()
    Enrollment.objects.create(
        cognito_username="kept",
        flow="access_token",
        expires_at=now + timedelta(minutes=10),
        credential_expires_at=now + timedelta(hours=1),
        encrypted_credential=crypto.encrypt("a-token"),
    )
    settings.COGNITO_MFA_ENCRYPTION_KEYS = ["1CQ1pyomd3W0JVXCvGA2zvd8jlpRSd-gKKLjD4Ht4eg="]
    with pytest.raises(CommandError, match="cannot be decrypted"):
        call_command("rotate_encryption_keys", verbosity=0, stdout=io.StringIO())


def test_called_from_python_a_refusal_is_a_command_error_not_system_exit() -> None:
    # Django's rule for call_command: CommandError (with the exit code), never SystemExit,
    # which passes through `except Exception` and ends the web or task worker that called it.
    err = io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command(
            "verify_software_token",
            *("--access-token", SECRET, "--user-code", "12345"),
            stdout=io.StringIO(),
            stderr=err,
        )
    assert raised.value.returncode == 252
    assert "parameter UserCode" in str(raised.value)
    assert "parameter UserCode" in err.getvalue()
    assert SECRET not in str(raised.value) + err.getvalue()
