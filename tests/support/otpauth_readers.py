"""Two independent readers of otpauth URIs, as authenticator apps read them: pyotp, and the npm
``otpauth`` package run with Node. Each returns the issuer, the account name and the code it
computes, so tests can check that both split the label alike and that Cognito takes the codes.

The npm package is installed by ``.ci/run`` (``npm install --prefix DIR otpauth@9``) and found
through ``COGNITO_MFA_TEST_NODE_PATH=DIR/node_modules``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from unittest import mock

import pyotp
import pyotp.otp

from tests.support.services import require_service

NODE_PATH_ENV = "COGNITO_MFA_TEST_NODE_PATH"
NODE_OTPAUTH_MAJOR = "9"

# Reads [{"uri", "at"}] on stdin, writes [{"issuer", "account", "code"}] on stdout.
NODE_READER = """
const OTPAuth = require("otpauth");
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
const out = input.map(({ uri, at }) => {
  const otp = OTPAuth.URI.parse(uri);
  return { issuer: otp.issuer, account: otp.label, code: otp.generate({ timestamp: at * 1000 }) };
});
process.stdout.write(JSON.stringify(out));
"""


@dataclass(frozen=True)
class Reading:
    issuer: str
    account: str
    code: str


@contextmanager
def _short_secrets_allowed() -> Iterator[None]:
    # moto hands every user the 12-character secret "asdfasdfasdf" (60 bits); pyotp >= 2.11
    # refuses secrets under 112 bits when it builds the OTP.
    with mock.patch.object(pyotp.otp.OTP, "min_secret_length_bits", 0):
        yield


def read_with_pyotp(uri: str, at: float) -> Reading:
    with _short_secrets_allowed():
        otp = pyotp.parse_uri(uri)
        assert isinstance(otp, pyotp.TOTP)
        return Reading(issuer=otp.issuer or "", account=otp.name, code=otp.at(int(at)))


def _node_environment() -> dict[str, str]:
    node = shutil.which("node")
    node_path = os.environ.get(NODE_PATH_ENV, "")
    how = (
        f"install it with `npm install --prefix DIR otpauth@{NODE_OTPAUTH_MAJOR}` and set "
        f"{NODE_PATH_ENV}=DIR/node_modules"
    )
    require_service("node", node is not None, "no `node` on PATH (Debian: apt-get install nodejs)")
    require_service("the npm otpauth package", bool(node_path), f"{NODE_PATH_ENV} is unset; {how}")
    env = {**os.environ, "NODE_PATH": node_path}
    found = subprocess.run(
        ["node", "-e", 'process.stdout.write(require("otpauth").version)'],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    require_service(
        "the npm otpauth package",
        found.returncode == 0 and found.stdout.startswith(NODE_OTPAUTH_MAJOR + "."),
        f"not found (or not major {NODE_OTPAUTH_MAJOR}) under {node_path}: {how}",
    )
    return env


def read_with_node(uris: list[str], at: float) -> list[Reading]:
    """Read every URI in one Node process (starting one costs ~50 ms)."""
    env = _node_environment()
    done = subprocess.run(
        ["node", "-e", NODE_READER],
        input=json.dumps([{"uri": uri, "at": int(at)} for uri in uris]),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [Reading(**reading) for reading in json.loads(done.stdout)]


def read_alike(uri: str) -> tuple[str, str, str]:
    """Return (issuer, account, code) as both readers agree on them; fail if they differ."""
    at = time.time()
    (by_node,) = read_with_node([uri], at)
    by_pyotp = read_with_pyotp(uri, at)
    assert by_pyotp == by_node, (by_pyotp, by_node)
    return by_pyotp.issuer, by_pyotp.account, by_pyotp.code
