"""The secret, the access token and the codes are found nowhere they should not be.

Every logger at DEBUG (botocore's request/response logging included, and Django's SQL log),
the whole flow through the REST API against moto, then a search of the database, every log
record, every signal kwarg and every response after the one that shows the secret.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection
from django.db import models as django_models
from django.http import HttpRequest
from rest_framework.test import APIClient

from cognito_mfa import signals
from cognito_mfa.models import AuditEvent
from cognito_mfa.redaction import RedactingFilter
from tests.support.cognito import MOTO_SECRET, Pool, fresh_code, wrong_code
from tests.support.signals import SIGNAL_NAMES

BASE = "/api/mfa/"

# moto plays AWS inside this process: its loggers (and werkzeug's) are the other side of the
# wire, where the token and secret legitimately live, so their records are not ours to judge.
FOREIGN_LOGGERS = ("moto", "werkzeug")


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


_STANDARD_ATTRS = set(vars(logging.LogRecord("n", 0, "p", 0, "m", None, None))) | {
    "message",
    "asctime",
}


def render(record: logging.LogRecord) -> str:
    """Everything a handler could write about a record: message, args, exception, extras."""
    parts = [record.getMessage(), repr(record.msg), repr(record.args)]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    if record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(record.stack_info)
    for name, value in vars(record).items():
        if name not in _STANDARD_ATTRS:
            parts.append(f"{name}={value!r}")
    return "\n".join(parts)


@pytest.fixture
def every_record() -> Iterator[Records]:
    """Every logger at DEBUG, propagating to a capturing handler on the root logger."""
    handler = Records()
    root = logging.getLogger()
    saved: list[tuple[logging.Logger, int, bool, bool]] = []
    names = [
        *logging.root.manager.loggerDict,
        "botocore",
        "boto3",
        "urllib3",
        "django",
        "django.request",
        "django.db.backends",
        "cognito_mfa",
        "rest_framework",
    ]
    for name in names:
        target = logging.getLogger(name)
        saved.append((target, target.level, target.propagate, target.disabled))
        target.setLevel(logging.DEBUG)
        target.propagate = True
        target.disabled = False
    saved.append((root, root.level, root.propagate, root.disabled))
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    previous_disable = logging.root.manager.disable
    logging.disable(logging.NOTSET)
    # Django writes its SQL log only with a debug cursor.
    debug_cursor = connection.force_debug_cursor
    connection.force_debug_cursor = True
    try:
        yield handler
    finally:
        connection.force_debug_cursor = debug_cursor
        root.removeHandler(handler)
        logging.disable(previous_disable)
        for target, level, propagate, disabled in saved:
            target.setLevel(level)
            target.propagate = propagate
            target.disabled = disabled


class EverySignal:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self._receivers: list[tuple[Any, Any]] = []

    def connect(self) -> None:
        for name in SIGNAL_NAMES:
            signal = getattr(signals, name)

            def receiver(sender: Any, _name: str = name, **kwargs: Any) -> None:
                kwargs.pop("signal", None)
                self.sent.append((_name, kwargs))

            signal.connect(receiver, weak=False)
            self._receivers.append((signal, receiver))

    def disconnect(self) -> None:
        for signal, receiver in self._receivers:
            signal.disconnect(receiver)


@pytest.fixture
def every_signal() -> Iterator[EverySignal]:
    log = EverySignal()
    log.connect()
    yield log
    log.disconnect()


def walk(value: Any, seen: set[int] | None = None) -> Iterator[str]:
    """Text forms of a value and, for model instances and containers, of what they hold."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, HttpRequest):
        # The request is the host's own object (its headers carry whatever the client sent);
        # what matters is that nothing of ours was attached to it.
        yield repr(value)
        for name, attribute in vars(value).items():
            if name.startswith("cognito") or name in {"auth", "_cognito_token"}:
                yield from walk(attribute, seen)
        return
    yield repr(value)
    yield str(value)
    if isinstance(value, django_models.Model):
        for field in value._meta.concrete_fields:
            yield from walk(field.value_from_object(value), seen)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from walk(key, seen)
            yield from walk(item, seen)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from walk(item, seen)
    elif isinstance(value, bytes | bytearray | memoryview):
        yield bytes(value).decode("latin-1")


# Numbers that are timestamps, ids, hashes or ciphertext cannot carry a code by construction;
# removing them keeps a 6-digit code from matching a microsecond field by chance.
_NOISE = re.compile(
    r"datetime\.datetime\([^)]*\)"
    r"|\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?"
    r"|\d{8}T\d{6}Z"
    r"|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[A-Za-z0-9+/=_-]{24,}"
    r"|\d+\.\d+"
)


def holds_code(text: str, code: str) -> bool:
    return re.search(rf"(?<![0-9]){code}(?![0-9])", _NOISE.sub(" ", text)) is not None


def database_text() -> tuple[str, list[bytes]]:
    """``dumpdata`` of everything, and the raw value of every column of every row."""
    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    raw: list[bytes] = []
    for model in apps.get_models():
        for row in model._default_manager.values_list():
            for value in row:
                if isinstance(value, bytes | bytearray | memoryview):
                    raw.append(bytes(value))
                elif isinstance(value, datetime | date):
                    continue
                else:
                    raw.append(str(value).encode())
    return dump.getvalue(), raw


class Flow:
    """The full access-token flow; keeps every response after the one showing the secret."""

    def __init__(self, pool: Pool, token: str, api: APIClient) -> None:
        self.responses: list[Any] = []
        started = api.post(
            BASE + "enrollments/", {"friendly_device_name": "Alice's phone"}, format="json"
        )
        assert started.status_code == 201
        body = started.json()
        assert body["secret_code"] == MOTO_SECRET  # the one response that shows it
        self.enrollment_id = body["id"]
        verify = f"{BASE}enrollments/{self.enrollment_id}/verify/"

        self.bad = wrong_code()
        self._keep(api.post(verify, {"user_code": self.bad}, format="json"), 400)
        self.good = fresh_code()
        self._keep(api.post(verify, {"user_code": self.good}, format="json"), 200)
        self._keep(api.get(BASE + "status/"), 200)
        assert self.responses[-1].json()["software_token_mfa_enabled"] is True
        preference = {"enabled": True, "preferred": True}
        self._keep(api.post(BASE + "preference/", preference, format="json"), 200)
        self._keep(api.get(BASE + "enrollments/"), 200)
        self._keep(api.get(f"{BASE}enrollments/{self.enrollment_id}/"), 200)
        # A revoked token: moto's SetUserMFAPreference error message then holds the whole
        # token, and botocore logs that message at DEBUG.
        pool.client.global_sign_out(AccessToken=token)
        self._keep(api.get(BASE + "status/"), 401)
        self._keep(api.post(BASE + "preference/", preference, format="json"), 401)

        _header, payload, signature = token.split(".")
        self.secrets = {
            "TOTP secret": MOTO_SECRET,
            "TOTP secret (upper case)": MOTO_SECRET.upper(),
            "access token": token,
            "access token signature": signature,
            "access token payload": payload,
        }
        self.codes = {"wrong code": self.bad, "right code": self.good}

    def _keep(self, response: Any, status: int) -> None:
        assert response.status_code == status, response.content
        self.responses.append(response)


def log_leaks(flow: Flow, records: Records) -> list[str]:
    rendered = [
        (record.name, render(record))
        for record in records.records
        if not record.name.startswith(FOREIGN_LOGGERS)
    ]
    found = [
        f"{label} in a record of {name}"
        for label, value in flow.secrets.items()
        for name, text in rendered
        if value in text
    ]
    found += [
        f"{label} in a record of {name}: {text[:300]}"
        for label, code in flow.codes.items()
        for name, text in rendered
        if holds_code(text, code)
    ]
    return found


@pytest.mark.django_db(transaction=True)
def test_secret_token_and_codes_are_found_nowhere(
    pool: Pool,
    alice: str,
    alice_api: APIClient,
    every_record: Records,
    every_signal: EverySignal,
) -> None:
    flow = Flow(pool, alice, alice_api)

    # 1. every log record (moto's own excepted, see FOREIGN_LOGGERS)
    rendered = [(record.name, render(record)) for record in every_record.records]
    names = {name for name, _ in rendered}
    # The capture really saw botocore's request/response log and Django's SQL log ...
    assert {"botocore.endpoint", "botocore.parsers", "django.db.backends"} <= names, names
    # ... including the records that carried the secret and the token, masked.
    assert any('"SecretCode": "***"' in text for _, text in rendered)
    assert any("OperationModel(name=VerifySoftwareToken) with params" in t for _, t in rendered)
    assert any("NotAuthorizedException" in text for name, text in rendered if "parsers" in name)
    assert log_leaks(flow, every_record) == []

    # 2. every signal kwarg
    assert {name for name, _ in every_signal.sent} >= {
        "enrollment_started",
        "verification_failed",
        "software_token_verified",
        "mfa_preference_changed",
    }
    for name, kwargs in every_signal.sent:
        texts = list(walk(kwargs))
        for label, value in flow.secrets.items():
            assert not any(value in text for text in texts), f"{label} in {name} kwargs"
        for label, code in flow.codes.items():
            assert not any(holds_code(text, code) for text in texts), f"{label} in {name}"

    # 3. every response after the one that shows the secret
    for response in flow.responses:
        content = response.content.decode()
        for label, value in flow.secrets.items():
            assert value not in content, f"{label} in a response: {content[:200]}"
        for label, code in flow.codes.items():
            assert not holds_code(content, code), f"{label} in a response"

    # 4. the database: dumpdata and the raw bytes of every column
    dump, columns = database_text()
    assert flow.enrollment_id in dump
    for label, value in flow.secrets.items():
        assert value not in dump, f"{label} in dumpdata"
        assert not any(value.encode() in column for column in columns), f"{label} in a column"
    events = list(AuditEvent.objects.all())
    assert len(events) >= 4
    audit = [
        text
        for event in events
        for text in walk(
            [event.kind, event.source, event.outcome, event.detail, event.cognito_username]
        )
    ]
    for label, code in flow.codes.items():
        assert not any(holds_code(text, code) for text in audit), f"{label} in the audit trail"


@pytest.mark.django_db(transaction=True)
def test_the_admin_verify_page_shows_logs_and_reports_no_code(
    alice_api: APIClient,
    every_record: Records,
    every_signal: EverySignal,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The help desk's verify page: a wrong code that crashes the page after Cognito answered,
    the same wrong code again, then the right one. Neither code is on any admin page, in a log
    record, a signal, the database, or the error report of the failed request."""
    from django.contrib.admin.models import LogEntry
    from django.test import Client
    from django.urls import reverse
    from django.views.debug import ExceptionReporter

    from cognito_mfa.admin import EnrollmentAdmin
    from tests.support.admin import (
        change_url,
        changelist_url,
        make_staff,
        verify_url,
        verify_with_code,
    )

    started = alice_api.post(BASE + "enrollments/", {}, format="json")
    assert started.status_code == 201
    pk = started.json()["id"]
    client = Client(raise_request_exception=False)  # a crash is then a 500, as in production
    client.force_login(make_staff("helpdesk"))
    codes = {"wrong code": wrong_code(), "right code": fresh_code()}

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the admin log went away")

    responses = [client.get(verify_url(pk))]
    # A refused device name: the form comes back bound to what was posted, the code box empty.
    refused = verify_with_code(
        client, pk, user_code=codes["right code"], friendly_device_name="phone\u202e"
    )
    assert refused.status_code == 200
    assert refused.context["form"].errors["friendly_device_name"]
    responses.append(refused)
    with monkeypatch.context() as patched:
        patched.setattr(EnrollmentAdmin, "log_change", crash)
        failed = verify_with_code(client, pk, user_code=codes["wrong code"])
    assert failed.status_code == 500
    responses.append(verify_with_code(client, pk, user_code=codes["wrong code"]))
    assert responses[-1].status_code == 200  # the form again
    responses.append(verify_with_code(client, pk, user_code=codes["right code"]))
    assert responses[-1].status_code == 302
    events = reverse("admin:cognito_mfa_auditevent_changelist")
    for url in (change_url(pk), f"{change_url(pk)}../history/", changelist_url(), events):
        responses.append(client.get(url, follow=True))
    for event in AuditEvent.objects.all():
        responses.append(
            client.get(reverse("admin:cognito_mfa_auditevent_change", args=[event.pk]))
        )
    assert AuditEvent.objects.filter(kind="verified", source="admin").exists()

    # 1. every admin page, the verify page's own answers included
    for response in responses:
        assert response.status_code in (200, 302)
        for label, code in codes.items():
            assert not holds_code(response.content.decode(), code), f"{label} on a page"

    # 2. the error report of the failed request, as the admins' e-mail would carry it
    (logged,) = [
        record
        for record in every_record.records
        if record.name == "django.request" and record.exc_info is not None
    ]
    assert logged.exc_info is not None
    reporter = ExceptionReporter(logged.request, *logged.exc_info, is_email=True)  # type: ignore[attr-defined]
    for report in (reporter.get_traceback_html(), reporter.get_traceback_text()):
        assert "user_code" in report  # the POST is in the report, its value masked
        assert "verify_device_view" in report
        for label, code in codes.items():
            assert not holds_code(report, code), f"{label} in the error report"

    # 3. every log record, 4. every signal kwarg, 5. the database and the admin's history
    rendered = [
        (record.name, render(record))
        for record in every_record.records
        if not record.name.startswith(FOREIGN_LOGGERS)
    ]
    assert any("VerifySoftwareToken" in text for _, text in rendered)
    dump, _ = database_text()
    history = [entry.change_message for entry in LogEntry.objects.all()]
    assert history
    for label, code in codes.items():
        for name, text in rendered:
            assert not holds_code(text, code), f"{label} in a record of {name}: {text[:300]}"
        for name, kwargs in every_signal.sent:
            assert not any(holds_code(text, code) for text in walk(kwargs)), f"{label} in {name}"
        assert not holds_code(dump, code), f"{label} in dumpdata"
        assert not any(holds_code(text, code) for text in history), f"{label} in the history"


@pytest.mark.django_db(transaction=True)
def test_the_search_finds_leaks_when_redaction_is_off(
    pool: Pool,
    alice: str,
    alice_api: APIClient,
    every_record: Records,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The control: without the app's log redaction, the very same search reports leaks."""
    monkeypatch.setattr(RedactingFilter, "filter", lambda self, record: True)
    flow = Flow(pool, alice, alice_api)
    found = "\n".join(log_leaks(flow, every_record))
    assert "TOTP secret in a record of botocore.parsers" in found
    assert "access token in a record of botocore.endpoint" in found
    assert "access token in a record of botocore.parsers" in found  # moto's error message
    assert "right code in a record of botocore.endpoint" in found
    assert "wrong code in a record of botocore.endpoint" in found


def test_code_search_is_not_fooled_by_timestamps_but_finds_codes() -> None:
    """The code search above ignores timestamps and ids, and still sees a code in text."""
    assert not holds_code("2026-11-26 05:20:01.123456+00:00", "123456")
    assert not holds_code("datetime.datetime(2026, 11, 26, 5, 20, 1, 123456)", "123456")
    assert not holds_code("X-Amz-Date: 20261126T123456Z", "123456")
    assert holds_code("{'UserCode': '123456'}", "123456")
    assert holds_code('b\'{"UserCode": "123456"}\'', "123456")
    assert holds_code("code=123456 attempts=1", "123456")
