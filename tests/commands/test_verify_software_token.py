"""``verify_software_token``: the mirror of ``aws cognito-idp verify-software-token``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from cognito_mfa.cognito import get_client
from cognito_mfa.management.commands import verify_software_token as command_module
from tests.support.cognito import Pool, fresh_code, wrong_code
from tests.support.commands import manage_py, run_verify_software_token

# What `aws cognito-idp verify-software-token --generate-cli-skeleton [input]` prints (aws-cli
# 1.46.3): the request members in the service model's order, empty, indent 4, one newline.
AWS_CLI_INPUT_SKELETON = (
    "{\n"
    '    "AccessToken": "",\n'
    '    "Session": "",\n'
    '    "UserCode": "",\n'
    '    "FriendlyDeviceName": ""\n'
    "}\n"
)


@pytest.fixture
def no_cognito(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the command tries to reach Cognito."""

    def refuse() -> Any:
        raise AssertionError("Cognito must not be called")

    monkeypatch.setattr(command_module, "get_client", refuse)


@pytest.fixture
def associated(pool: Pool) -> str:
    """An access token of a user with a software token associated but not yet verified."""
    pool.create_user("olga")
    token = pool.access_token("olga")
    pool.client.associate_software_token(AccessToken=token)
    return token


# --- skeletons ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args", [["--generate-cli-skeleton"], ["--generate-cli-skeleton", "input"]]
)
def test_input_skeleton_equals_the_aws_clis(no_cognito: None, args: list[str]) -> None:
    code, out, err = run_verify_software_token(*args)
    assert (code, err) == (0, "")
    assert out == AWS_CLI_INPUT_SKELETON
    assert list(json.loads(out)) == ["AccessToken", "Session", "UserCode", "FriendlyDeviceName"]


def test_input_skeleton_is_derived_from_the_service_model(no_cognito: None) -> None:
    import botocore.session

    model = botocore.session.get_session().get_service_model("cognito-idp")
    members = list(model.operation_model("VerifySoftwareToken").input_shape.members)
    assert json.loads(run_verify_software_token("--generate-cli-skeleton")[1]) == dict.fromkeys(
        members, ""
    )


def test_input_skeleton_from_the_real_command_line() -> None:
    done = manage_py("verify_software_token", "--generate-cli-skeleton")
    assert (done.returncode, done.stdout, done.stderr) == (0, AWS_CLI_INPUT_SKELETON, "")


def test_output_skeleton_validates_input_and_sends_nothing(no_cognito: None) -> None:
    # The AWS CLI's rule: each output member filled with its own name.
    code, out, err = run_verify_software_token(
        "--generate-cli-skeleton", "output", "--access-token", "a-token", "--user-code", "123456"
    )
    assert (code, err) == (0, "")
    assert out == '{\n    "Status": "Status",\n    "Session": "Session"\n}\n'
    # Like the CLI, "output" still needs a valid command.
    code, out, err = run_verify_software_token(
        "--generate-cli-skeleton", "output", "--access-token", "a-token"
    )
    assert code == 252
    assert out == ""
    assert "the following arguments are required: --user-code" in err


# --- input handling -----------------------------------------------------------------------------


def test_access_token_with_session_is_refused(no_cognito: None) -> None:
    token, session = "eyJhbGciOi.token-value.sig", "session-value-" + "x" * 20
    code, out, err = run_verify_software_token(
        "--access-token", token, "--session", session, "--user-code", "123456"
    )
    assert code == 252
    assert out == ""
    assert "Exactly one of AccessToken (--access-token) and Session (--session)" in err
    assert token not in err
    assert session not in err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--access-token", "t"], "the following arguments are required: --user-code"),
        (["--user-code", "123456"], "Exactly one of AccessToken"),
        (["--access-token", "t", "--user-code", "12345"], "parameter UserCode"),
        (["--access-token", "t", "--user-code", "\u0661" * 6], "parameter UserCode"),
        (["--session", "short", "--user-code", "123456"], "parameter Session"),
        (["--cli-input-json", "{not json, token=SECRET-VALUE"], "Invalid JSON"),
        (["--cli-input-json", '["AccessToken"]'], "expected a JSON object"),
        (["--cli-input-json", '{"Bogus": "x"}'], 'Unknown parameter in input: "Bogus"'),
        (["--cli-input-json", '{"UserCode": 123456}'], "Invalid type for parameter UserCode"),
        (["--cli-input-json", "file:///nonexistent/input.json"], "Unable to load paramfile"),
        (["--cli-input-json", "file:///"], "Unable to load paramfile"),  # a directory
        (["--cli-input-json", "file:///tmp/a\x00b"], "not a valid path"),
        # RecursionError (Python 3.13's decoder parses 5,000 levels; 100,000 exhaust it too)
        (["--cli-input-json", "[" * 100_000 + "]" * 100_000], "Invalid JSON"),
        (["--cli-input-json", '{"UserCode": null, "AccessToken": "t"}'], "Invalid type"),
    ],
    ids=lambda value: repr(value)[:40] if isinstance(value, list) else None,
)
def test_bad_parameters_exit_252_without_echo(
    no_cognito: None, args: list[str], expected: str
) -> None:
    code, out, err = run_verify_software_token(*args)
    assert code == 252
    assert out == ""
    assert err.startswith("\n")
    assert expected in err
    assert "SECRET-VALUE" not in err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"UserCode": "123456", "AccessToken": "SECRET-VALUE\xff\xfe"}', "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "Invalid JSON"),
        (b'{"AccessToken": "SECRET-VALUE' + b"x" * 1024 * 1024 + b'"}', "larger than 1024 KiB"),
    ],
    ids=["not UTF-8", "nested too deeply", "too large"],
)
def test_bad_parameter_files_exit_252_without_echo(
    no_cognito: None, tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "input.json"
    path.write_bytes(content)
    code, out, err = run_verify_software_token("--cli-input-json", f"file://{path}")
    assert (code, out) == (252, "")
    assert expected in err
    assert "Traceback" not in err
    assert "SECRET-VALUE" not in err


def test_a_file_that_is_not_utf8_from_the_real_command_line(tmp_path: Path) -> None:
    path = tmp_path / "input.json"
    path.write_bytes(b'{"UserCode": "123456", "AccessToken": "\xff"}')
    done = manage_py("verify_software_token", "--cli-input-json", f"file://{path}")
    assert done.returncode == 252, done.stderr[-300:]
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert f"Unable to load paramfile file://{path}: the text is not UTF-8" in done.stderr


@pytest.mark.django_db
def test_success_against_moto(associated: str, pool: Pool) -> None:
    code, out, err = run_verify_software_token(
        "--access-token", associated, "--user-code", fresh_code(), "--friendly-device-name", "CLI"
    )
    assert (code, err) == (0, "")
    printed = json.loads(out)
    assert printed["Status"] == "SUCCESS"
    assert list(printed) in (["Status"], ["Status", "Session"])
    assert out == json.dumps(printed, indent=4) + "\n"
    assert associated not in out
    # The token is verified: TOTP can now be turned on.
    pool.client.admin_set_user_mfa_preference(
        UserPoolId=pool.pool_id,
        Username="olga",
        SoftwareTokenMfaSettings={"Enabled": True, "PreferredMfa": True},
    )
    assert pool.mfa_state("olga")["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA"]


@pytest.mark.django_db
def test_filled_in_skeleton_is_accepted(associated: str, tmp_path: Path) -> None:
    filled = json.loads(AWS_CLI_INPUT_SKELETON)
    filled.update(AccessToken=associated, UserCode=fresh_code())
    code, out, err = run_verify_software_token("--cli-input-json", json.dumps(filled))
    assert (code, err) == (0, "")
    assert json.loads(out)["Status"] == "SUCCESS"

    # file://, as the AWS CLI reads it; a second verify of the same token also succeeds.
    path = tmp_path / "input.json"
    path.write_text(json.dumps(filled), encoding="utf-8")
    code, out, err = run_verify_software_token("--cli-input-json", f"file://{path}")
    assert (code, err) == (0, "")
    assert json.loads(out)["Status"] == "SUCCESS"


@pytest.mark.django_db
def test_command_line_values_override_the_json(associated: str) -> None:
    filled = {"AccessToken": "not-the-token", "Session": "", "UserCode": wrong_code()}
    code, out, err = run_verify_software_token(
        "--cli-input-json",
        json.dumps(filled),
        "--access-token",
        associated,
        "--user-code",
        fresh_code(),
    )
    assert (code, err) == (0, "")
    assert json.loads(out)["Status"] == "SUCCESS"

    # And the other way round: the option's wrong code wins over the JSON's right one.
    filled = {"AccessToken": associated, "UserCode": fresh_code()}
    code, out, err = run_verify_software_token(
        "--cli-input-json", json.dumps(filled), "--user-code", wrong_code()
    )
    assert code == 254
    assert "(CodeMismatchException)" in err


@pytest.mark.django_db
def test_errors_are_the_clis_line_without_tokens(associated: str) -> None:
    code, out, err = run_verify_software_token(
        "--access-token", associated, "--user-code", wrong_code()
    )
    assert code == 254
    assert out == ""
    assert err == (
        "\nAn error occurred (CodeMismatchException) when calling the VerifySoftwareToken "
        "operation: Invalid code received for the software token.\n"
    )

    # moto puts the token it was given into its message; ours never does.
    bogus = "bogus-token-value-1234567890"
    code, out, err = run_verify_software_token("--access-token", bogus, "--user-code", "123456")
    assert code == 254
    assert err.startswith("\nAn error occurred (NotAuthorizedException) when calling the ")
    assert bogus not in err


@pytest.mark.django_db
def test_status_error_is_printed_like_the_cli(pool: Pool) -> None:
    with Stubber(get_client().client) as stub:
        stub.add_response("verify_software_token", {"Status": "ERROR"})
        code, out, err = run_verify_software_token("--session", "s" * 30, "--user-code", "123456")
    assert (code, err) == (0, "")
    assert out == '{\n    "Status": "ERROR"\n}\n'


@pytest.mark.django_db
def test_unreachable_cognito_exits_255(pool: Pool, settings: Any) -> None:
    settings.COGNITO_MFA_ENDPOINT_URL = "http://127.0.0.1:9"
    settings.COGNITO_MFA_CONNECT_TIMEOUT = 0.5
    code, out, err = run_verify_software_token("--access-token", "tok", "--user-code", "123456")
    assert code == 255
    assert out == ""
    assert "Could not connect" in err


def test_a_parameter_file_under_an_unknown_home_exits_252_without_a_traceback() -> None:
    done = manage_py(
        "verify_software_token",
        "--cli-input-json",
        "file://~no_such_user_here/in.json",
        "--user-code",
        "123456",
        "--session",
        "abc",
    )
    assert done.returncode == 252, done.stderr[-300:]
    assert "Traceback" not in done.stderr
