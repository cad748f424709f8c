"""Helpers for the sign-in ``MFA_SETUP`` challenge tests: the SPA's side of the sign-in,
a Stubber-backed app client, and the sentinel searches (database, logs, signals)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.stub import Stubber
from django.core.management import call_command
from django.db import connection

from cognito_mfa import cognito
from cognito_mfa.cognito import CognitoClient, parse_mfas_can_setup
from tests.conftest import fresh_code
from tests.support import PASSWORD, Pool

NEW_PASSWORD = "Brand-New-Passw0rd-42"


def configure(settings: Any, pool: Pool, endpoint_url: str | None = None) -> None:
    """Point the app at ``pool`` (and at moto's HTTP server when ``endpoint_url`` is set)."""
    settings.COGNITO_MFA_REGION = "us-east-1"
    settings.COGNITO_MFA_USER_POOL_ID = pool.pool_id
    settings.COGNITO_MFA_APP_CLIENT_IDS = [pool.client_id]
    settings.COGNITO_MFA_APP_CLIENT_SECRET = pool.client_secret
    if endpoint_url is not None:
        settings.COGNITO_MFA_ENDPOINT_URL = endpoint_url
        settings.COGNITO_MFA_JWKS_URL = f"{endpoint_url}/{pool.pool_id}/.well-known/jwks.json"


START_URL = "/api/mfa/challenge/enrollments/"


def verify_url(enrollment_id: Any) -> str:
    return f"{START_URL}{enrollment_id}/verify/"


def start(api: Any, username: str, session: str, **extra: Any) -> Any:
    """``POST challenge/enrollments/`` as the SPA sends it."""
    return api.post(START_URL, {"username": username, "session": session, **extra}, format="json")


def verify(api: Any, started: dict[str, Any], code: str) -> Any:
    """``POST challenge/enrollments/{id}/verify/`` with the start's challenge token."""
    body = {"challenge_token": started["challenge_token"], "user_code": code}
    return api.post(verify_url(started["id"]), body, format="json")


def mfa_setup_session(pool: Pool, username: str) -> str:
    """Create a user with a temporary password and sign in as the SPA does, up to the
    ``MFA_SETUP`` challenge; return its Session."""
    pool.create_user(username, email=f"{username}@example.com", permanent=False)
    return Spa(pool).reach_mfa_setup(username)


def expected_secret_hash(username: str, client_id: str, client_secret: str) -> str:
    """SECRET_HASH as the Cognito docs define it, computed here independently of the app."""
    mac = hmac.new(client_secret.encode(), (username + client_id).encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


@dataclass
class Spa:
    """What a single-page app does with Cognito itself, around the app's two endpoints."""

    pool: Pool
    password: str = NEW_PASSWORD

    def _with_hash(self, username: str, values: dict[str, str]) -> dict[str, str]:
        # A confidential client: every call that names the user carries SECRET_HASH.
        if self.pool.client_secret:
            values["SECRET_HASH"] = expected_secret_hash(
                username, self.pool.client_id, self.pool.client_secret
            )
        return values

    def reach_mfa_setup(self, username: str) -> str:
        """Sign in with the temporary password, answer NEW_PASSWORD_REQUIRED; return the
        MFA_SETUP Session."""
        client = self.pool.client
        first = client.initiate_auth(
            ClientId=self.pool.client_id,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters=self._with_hash(
                username, {"USERNAME": username, "PASSWORD": PASSWORD + "tmp"}
            ),
        )
        assert first["ChallengeName"] == "NEW_PASSWORD_REQUIRED"
        second = client.respond_to_auth_challenge(
            ClientId=self.pool.client_id,
            ChallengeName="NEW_PASSWORD_REQUIRED",
            Session=first["Session"],
            ChallengeResponses=self._with_hash(
                username, {"USERNAME": username, "NEW_PASSWORD": self.password}
            ),
        )
        assert second["ChallengeName"] == "MFA_SETUP"
        # moto sends a Python repr ("['SOFTWARE_TOKEN_MFA']"), AWS a JSON list.
        can_setup = parse_mfas_can_setup(second["ChallengeParameters"]["MFAS_CAN_SETUP"])
        assert "SOFTWARE_TOKEN_MFA" in can_setup
        return str(second["Session"])

    def respond_mfa_setup(self, username: str, session: str) -> dict[str, Any]:
        """Answer MFA_SETUP with the Session the app returned; return the tokens."""
        response = self.pool.client.respond_to_auth_challenge(
            ClientId=self.pool.client_id,
            ChallengeName="MFA_SETUP",
            Session=session,
            ChallengeResponses=self._with_hash(username, {"USERNAME": username}),
        )
        return dict(response["AuthenticationResult"])

    def start_password_sign_in(self, username: str) -> dict[str, Any]:
        """InitiateAuth with the permanent password; return Cognito's whole answer."""
        return dict(
            self.pool.client.initiate_auth(
                ClientId=self.pool.client_id,
                AuthFlow="USER_PASSWORD_AUTH",
                AuthParameters=self._with_hash(
                    username, {"USERNAME": username, "PASSWORD": self.password}
                ),
            )
        )

    def answer_totp(self, username: str, session: str, code: str) -> dict[str, Any]:
        response = self.pool.client.respond_to_auth_challenge(
            ClientId=self.pool.client_id,
            ChallengeName="SOFTWARE_TOKEN_MFA",
            Session=session,
            ChallengeResponses=self._with_hash(
                username, {"USERNAME": username, "SOFTWARE_TOKEN_MFA_CODE": code}
            ),
        )
        return dict(response["AuthenticationResult"])

    def sign_in_with_totp(self, username: str, secret: str) -> dict[str, Any]:
        first = self.start_password_sign_in(username)
        assert first.get("ChallengeName") == "SOFTWARE_TOKEN_MFA", first
        return self.answer_totp(username, first["Session"], fresh_code(secret))


# --- a Stubber behind the app's Cognito boundary -----------------------------------------------


@contextmanager
def stubbed_app_client(monkeypatch: Any) -> Iterator[Stubber]:
    """Install a Stubber-backed client as the app's process-wide Cognito client."""
    raw = boto3.client("cognito-idp", region_name="us-east-1")
    stubber = Stubber(raw)
    monkeypatch.setattr(cognito.client, "_client", CognitoClient(raw))
    with stubber:
        yield stubber


# --- sentinel searches ------------------------------------------------------------------------


def database_dump() -> tuple[str, bytes]:
    """Return ``dumpdata`` of every app and the raw bytes of every column of every table."""
    out = io.StringIO()
    call_command("dumpdata", stdout=out)
    raw = bytearray()
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, memoryview):
                        value = value.tobytes()
                    raw += value if isinstance(value, bytes) else str(value).encode()
                    raw += b"\x00"
    return out.getvalue(), bytes(raw)


def assert_absent(sentinels: dict[str, str], where: str, text: str | bytes) -> None:
    """Fail naming the sentinel (never printing it) if any appears in ``text``."""
    for name, value in sentinels.items():
        needle: str | bytes = value.encode() if isinstance(text, bytes) else value
        assert needle not in text, f"{name} found in {where}"  # type: ignore[operator]


class LogCapture(logging.Handler):
    """Every record, formatted, from every logger at DEBUG (minus excluded loggers/thread)."""

    def __init__(
        self, *, excluded_prefixes: tuple[str, ...] = (), skip_thread: int | None = None
    ) -> None:
        super().__init__(level=logging.DEBUG)
        self.excluded_prefixes = excluded_prefixes
        self.skip_thread = skip_thread
        self.records: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in self.excluded_prefixes:
            return
        if self.skip_thread is not None and record.thread == self.skip_thread:
            return
        text = self.format(record)
        with self._guard:
            self.records.append(text)

    def text(self) -> str:
        with self._guard:
            return "\n".join(self.records)


@contextmanager
def all_loggers_at_debug(capture: LogCapture) -> Iterator[LogCapture]:
    """Set the root and every existing logger to DEBUG and collect what they emit."""
    root = logging.getLogger()
    saved = {
        name: logger.level
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    saved_root, saved_disabled = root.level, logging.root.manager.disable
    logging.disable(logging.NOTSET)
    for name in saved:
        logging.getLogger(name).setLevel(logging.DEBUG)
    root.setLevel(logging.DEBUG)
    root.addHandler(capture)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        root.setLevel(saved_root)
        logging.disable(saved_disabled)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def signal_kwargs_text(events: list[tuple[str, dict[str, Any]]]) -> str:
    """Flatten signal kwargs: reprs, every model field value, the request's headers.

    The ``request`` kwarg is the caller's own HttpRequest (pinned by the public contract);
    its body is what the SPA sent, so only its repr and headers are searched.
    """
    from django.db.models import Model

    parts: list[str] = []
    for name, kwargs in events:
        parts.append(name)
        for key, value in kwargs.items():
            parts.append(f"{key}={value!r}")
            if isinstance(value, Model):
                for model_field in value._meta.concrete_fields:
                    parts.append(repr(model_field.value_from_object(value)))
            if key == "request" and value is not None:
                parts.append(repr(dict(value.headers)))
                parts.append(value.get_full_path())
    return "\n".join(parts)
