"""Searches for what must never leak (a secret, a token, a Session, a code): the database,
every log record at DEBUG, and every signal kwarg."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.management import call_command
from django.db import connection


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
