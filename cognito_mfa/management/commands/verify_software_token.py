"""``manage.py verify_software_token``: ``aws cognito-idp verify-software-token``, in Django.

Same options, same ``--cli-input-json`` format, same skeletons, same JSON output and error line
as the AWS CLI, using the site's Cognito settings (region, endpoint, timeouts). Differences,
all on the safe side: exactly one of ``--access-token`` / ``--session`` is accepted; the code
must be 6 ASCII digits before anything is sent; empty strings in ``--cli-input-json`` count as
absent (so the skeleton can be filled in partly); a ``file://`` parameter file must be UTF-8
and at most 1 MiB; error text is ours, never Cognito's (which can contain the token); nothing
given is ever echoed. Exit codes follow AWS CLI v2: 252 bad parameters, 253 configuration,
254 Cognito refused, 255 Cognito unreachable; from ``call_command``, a CommandError with
that ``returncode``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, NoReturn

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cognito_mfa import exceptions as exc
from cognito_mfa.cognito import cli_skeleton, get_client
from cognito_mfa.serializers import USER_CODE_PATTERN

OPERATION = "VerifySoftwareToken"

# The option each request member comes from (the CLI's naming rule).
OPTIONS = {
    "AccessToken": "access_token",
    "Session": "session",
    "UserCode": "user_code",
    "FriendlyDeviceName": "friendly_device_name",
}

EXIT_PARAMETERS = 252
EXIT_CONFIGURATION = 253
EXIT_SERVICE = 254
EXIT_OTHER = 255

# Our own text per Cognito error code: Cognito's messages may carry the token it was sent.
SAFE_MESSAGES = {
    "CodeMismatchException": "Invalid code received for the software token.",
    "EnableSoftwareTokenMFAException": "Invalid code received for the software token.",
    "ExpiredCodeException": "The code has expired.",
    "NotAuthorizedException": "The access token or session is not valid.",
    "InvalidParameterException": "A parameter is not valid.",
    "ResourceNotFoundException": "The session or user pool was not found.",
    "UserNotFoundException": "The user does not exist.",
    "SoftwareTokenMFANotFoundException": "No software token is associated with this user.",
    "TooManyRequestsException": "Too many requests; try again later.",
    "LimitExceededException": "A limit was exceeded; try again later.",
    "InternalErrorException": "Cognito had an internal error.",
}


# A filled-in skeleton is a few hundred bytes; a larger file (or /dev/zero) is a mistake.
MAX_PARAMFILE_BYTES = 1024 * 1024


# argparse's messages that quote what was typed (a token put after a misspelt option, say):
# the quoted part is replaced. "unrecognized arguments" is composed in CLIParser.parse_args.
ECHOED_VALUES = [
    (re.compile(r"(ambiguous option: [^=\s]+)=.*( could match )", re.S), r"\1=<value>\2"),
    (re.compile(r"(invalid choice: ).*( \(choose from [^()]*\))$", re.S), r"\1<value>\2"),
    (re.compile(r"(invalid \w+ value: |ignored explicit argument ).*$", re.S), r"\1<value>"),
]


class CLIParser(CommandParser):
    """Django's parser answering its own errors like the AWS CLI: exit 252, no value quoted."""

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            # argparse would list the extras themselves; name only the options among them.
            names = " ".join(extra.split("=", 1)[0] for extra in extras if extra.startswith("-"))
            self.error(f"unrecognized arguments: {names or '(a value)'}; values are not shown")
        return parsed

    def error(self, message: str) -> NoReturn:
        for pattern, replacement in ECHOED_VALUES:
            message = pattern.sub(replacement, message)
        if self.called_from_command_line:
            sys.stderr.write(f"\n{self.format_usage()}\n{self.prog}: error: {message}\n")
            sys.exit(EXIT_PARAMETERS)
        raise CommandError(f"Error: {message}", returncode=EXIT_PARAMETERS)


class CLIExit(Exception):
    """Stop with the AWS CLI's error text on stderr and a CLI exit code."""

    def __init__(self, message: str, returncode: int) -> None:
        super().__init__(message)
        self.message = message
        self.returncode = returncode


class Command(BaseCommand):
    help = (
        "Verify a software token (TOTP) with Cognito, like `aws cognito-idp "
        "verify-software-token`: --access-token or --session, --user-code, "
        "--friendly-device-name, --cli-input-json, --generate-cli-skeleton [input|output]."
    )
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        # Django builds a CommandParser itself; only its error handling is replaced.
        parser.__class__ = CLIParser
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--access-token", dest="access_token", metavar="<value>")
        parser.add_argument("--session", dest="session", metavar="<value>")
        parser.add_argument(
            "--user-code",
            dest="user_code",
            metavar="<value>",
            help="The 6-digit code (required, here or in --cli-input-json).",
        )
        parser.add_argument(
            "--friendly-device-name", dest="friendly_device_name", metavar="<value>"
        )
        parser.add_argument(
            "--no-call-budget",
            dest="call_budget",
            action="store_false",
            help="Send the call even when the site's budget of Cognito calls is spent, as the "
            "AWS CLI would (it still counts against the account's quota).",
        )
        parser.add_argument(
            "--cli-input-json",
            dest="cli_input_json",
            metavar="<value>",
            help="Arguments as JSON in the skeleton's format, or file://path to read them from. "
            "Values given on the command line override it.",
        )
        parser.add_argument(
            "--generate-cli-skeleton",
            dest="generate_cli_skeleton",
            nargs="?",
            const="input",
            choices=["input", "output"],
            help="Print a JSON skeleton (input: for --cli-input-json; output: the answer's "
            "shape) and send nothing.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            self._run(options)
        except CLIExit as stop:
            self.stderr.write("\n" + stop.message, style_func=lambda text: text)
            if not getattr(self, "_called_from_command_line", False):
                # call_command: Django's way. SystemExit would pass `except Exception` and end
                # the web or task worker that called it.
                raise CommandError(stop.message, returncode=stop.returncode) from None
            sys.exit(stop.returncode)

    # --- the steps ----------------------------------------------------------------------
    def _run(self, options: dict[str, Any]) -> None:
        if options.get("generate_cli_skeleton") == "input":
            # The CLI prints the input skeleton before reading any other argument.
            self._print(cli_skeleton(OPERATION, "input"))
            return
        params = self._parameters(options)
        if options.get("generate_cli_skeleton") == "output":
            # Like the CLI: validate the input, answer with the output's shape, send nothing.
            self._print(cli_skeleton(OPERATION, "output"))
            return
        try:
            client = get_client()
        except Exception as error:
            # Nothing was sent: the settings (region, endpoint, adapter) make no client. Only
            # settings are in the message, never what was given on the command line.
            raise CLIExit(
                "The Cognito client could not be built from the settings: "
                f"{type(error).__name__}: {error}",
                EXIT_CONFIGURATION,
            ) from None
        try:
            response = client.verify_software_token_raw(
                access_token=params.get("AccessToken"),
                session=params.get("Session"),
                user_code=params["UserCode"],
                device_name=params.get("FriendlyDeviceName"),
                charged=options.get("call_budget", True),
            )
        except exc.CallBudgetExhausted as refused:
            raise CLIExit(
                "The site's budget of Cognito calls is spent; nothing was sent. Try again in "
                f"{refused.retry_after} s, or pass --no-call-budget.",
                EXIT_SERVICE,
            ) from None
        except exc.CognitoUnavailable:
            raise CLIExit("Could not connect to the Cognito endpoint.", EXIT_OTHER) from None
        except exc.CognitoMFAError:
            raise CLIExit(
                "The Cognito client is not configured correctly; see the server log.",
                EXIT_CONFIGURATION,
            ) from None
        if response.error_code is not None:
            message = SAFE_MESSAGES.get(response.error_code, "Cognito refused the request.")
            raise CLIExit(
                f"An error occurred ({response.error_code}) when calling the {OPERATION} "
                f"operation: {message}",
                EXIT_SERVICE,
            )
        output: dict[str, Any] = {}
        if response.status is not None:
            output["Status"] = response.status
        if response.session is not None:
            output["Session"] = response.session
        self._print(output)

    def _parameters(self, options: dict[str, Any]) -> dict[str, str]:
        """Merge --cli-input-json and the options (options win); validate; never echo."""
        params: dict[str, str] = {}
        raw = options.get("cli_input_json")
        if raw is not None:
            params.update(self._read_input_json(raw))
        for member, option in OPTIONS.items():
            value = options.get(option)
            if value is not None:
                params[member] = value
        # An empty value in a filled-in skeleton means "not given".
        params = {member: value for member, value in params.items() if value != ""}

        if "UserCode" not in params:
            raise CLIExit("the following arguments are required: --user-code", EXIT_PARAMETERS)
        if ("AccessToken" in params) == ("Session" in params):
            # Cognito takes one credential; sending both would only fail on its side.
            raise CLIExit(
                "Parameter validation failed:\nExactly one of AccessToken (--access-token) "
                "and Session (--session) is required.",
                EXIT_PARAMETERS,
            )
        if not USER_CODE_PATTERN.fullmatch(params["UserCode"]):
            raise CLIExit(
                "Parameter validation failed:\nInvalid value for parameter UserCode: "
                "expected exactly 6 digits 0-9.",
                EXIT_PARAMETERS,
            )
        if "Session" in params and not 20 <= len(params["Session"]) <= 4096:
            raise CLIExit(
                "Parameter validation failed:\nInvalid length for parameter Session: "
                "expected 20 to 4096 characters.",
                EXIT_PARAMETERS,
            )
        return params

    @staticmethod
    def _read_input_json(raw: str) -> dict[str, str]:
        if raw.startswith("file://"):
            raw = _read_paramfile(raw[len("file://") :])
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            # The CLI prints the JSON it received; that would print the token. RecursionError:
            # arrays or objects nested deeper than the parser's recursion limit.
            raise CLIExit(
                "Error parsing parameter 'cli-input-json': Invalid JSON", EXIT_PARAMETERS
            ) from None
        if not isinstance(data, dict):
            raise CLIExit(
                "Error parsing parameter 'cli-input-json': expected a JSON object",
                EXIT_PARAMETERS,
            )
        unknown = [key for key in data if key not in OPTIONS]
        if unknown:
            raise CLIExit(
                "Parameter validation failed:\n"
                + "\n".join(
                    f'Unknown parameter in input: "{key}", must be one of: ' + ", ".join(OPTIONS)
                    for key in unknown
                ),
                EXIT_PARAMETERS,
            )
        for key, value in data.items():
            if not isinstance(value, str):
                raise CLIExit(
                    f"Parameter validation failed:\nInvalid type for parameter {key}, "
                    "valid types: <class 'str'>",
                    EXIT_PARAMETERS,
                )
        return dict(data)

    def _print(self, data: dict[str, Any]) -> None:
        # The CLI's JSON output: indent 4, non-ASCII kept, one trailing newline.
        self.stdout.write(json.dumps(data, indent=4, ensure_ascii=False))


def _read_paramfile(location: str) -> str:
    """Return the text of a ``file://`` parameter file; CLIExit (252) if it cannot be read,
    is larger than MAX_PARAMFILE_BYTES or is not UTF-8. Nothing of its content is echoed."""
    prefix = f"Error parsing parameter 'cli-input-json': Unable to load paramfile file://{location}"
    try:
        with Path(location).expanduser().open("rb") as handle:
            data = handle.read(MAX_PARAMFILE_BYTES + 1)
    except OSError as error:
        raise CLIExit(f"{prefix}: {error.strerror}", EXIT_PARAMETERS) from None
    except ValueError:  # a NUL byte in the path
        raise CLIExit(f"{prefix}: not a valid path", EXIT_PARAMETERS) from None
    except RuntimeError:  # ~user/... naming a user without a home directory
        raise CLIExit(f"{prefix}: no such home directory", EXIT_PARAMETERS) from None
    if len(data) > MAX_PARAMFILE_BYTES:
        raise CLIExit(f"{prefix}: larger than {MAX_PARAMFILE_BYTES // 1024} KiB", EXIT_PARAMETERS)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CLIExit(
            f"{prefix}: the text is not UTF-8 (save the file as UTF-8)", EXIT_PARAMETERS
        ) from None
