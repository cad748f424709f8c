"""The periodic housekeeping (``manage.py cleanup_enrollments``): expire stale enrollments,
complete owed preferences, delete what the retention period allows.

Every change is compare-and-set or idempotent, so several hosts may run it at the same time;
every walk is by keyset in short transactions, so its cost follows the rows it changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q

from ..conf import app_settings
from ..models import AuditEvent, Enrollment
from . import clock
from .context import Context
from .ending import expire_enrollment, expired_batch
from .preference import complete_owed


@dataclass(frozen=True)
class CleanupReport:
    expired: int
    deleted_enrollments: int
    deleted_events: int
    preferences_completed: int
    preferences_failed: int


def cleanup(context: Context) -> CleanupReport:
    """Expire stale enrollments, complete owed preferences, purge what retention allows."""
    expired = expire_stale_enrollments(context)
    completed, failed = complete_owed_preferences(context)
    deleted_enrollments, deleted_events = purge_finished()
    return CleanupReport(
        expired=expired,
        deleted_enrollments=deleted_enrollments,
        deleted_events=deleted_events,
        preferences_completed=completed,
        preferences_failed=failed,
    )


def complete_owed_preferences(context: Context) -> tuple[int, int]:
    """Complete every owed ``SetUserMFAPreference``; return ``(completed, failed)``."""
    owed = Enrollment.objects.owed_preferences().select_related("user")
    return complete_owed(context, owed.iterator())


class _BatchCrossed(Exception):
    """Another process changed a row of the batch between its read and its update."""


def expire_stale_enrollments(context: Context, *, batch_size: int = 500) -> int:
    """Expire every pending enrollment past ``expires_at``; return how many this call expired.

    Batch by batch in (expires_at, pk) order, each batch one short transaction: its rows are
    locked with SKIP LOCKED (a row a start or verify holds is left for the next run, never
    waited for), expired in one UPDATE, audited in one INSERT, announced after commit. Safe on
    several hosts at once: a row is expired (and signalled) exactly once, by the host whose
    UPDATE changed it. Where rows cannot be locked (SQLite), a batch another process changed
    meanwhile is rolled back and expired row by row with compare-and-set.
    """
    expired = 0
    key: tuple[Any, Any] | None = None
    while True:
        timestamp = clock.now()
        stale = Enrollment.objects.expirable(timestamp)
        if key is not None:
            stale = _after(stale, "expires_at", key)
        try:
            with transaction.atomic():
                batch = list(
                    stale.select_related("user")
                    .select_for_update(skip_locked=True, of=("self",))
                    .order_by("expires_at", "pk")[:batch_size]
                )
                if not batch:
                    return expired
                key = (batch[-1].expires_at, batch[-1].pk)
                _expire_batch(batch, context, timestamp)
            expired += len(batch)
        except _BatchCrossed:
            for enrollment in batch:
                if expire_enrollment(enrollment, context):
                    expired += 1


def _expire_batch(batch: list[Enrollment], context: Context, timestamp: datetime) -> None:
    """Expire ``batch`` (rows locked by the caller) in one UPDATE; audit and announce each.

    Raise _BatchCrossed, so the caller's transaction rolls back, unless every row changed.
    """
    changed = Enrollment.objects.filter(pk__in=[row.pk for row in batch]).expire(timestamp)
    if changed != len(batch):
        raise _BatchCrossed
    expired_batch(batch, context, timestamp)


def purge_finished(
    older_than: timedelta | None = None, *, batch_size: int = 500
) -> tuple[int, int]:
    """Delete finished enrollments and audit events older than the retention period.

    Return ``(enrollments, audit events)`` deleted. Pending rows are never deleted here.
    Both tables are walked by keyset over ``created_at`` (indexed), ``batch_size`` rows at a
    time, each batch its own short transaction: the cost follows the rows deleted, not the
    table, and no batch holds many locks or much memory. Rows another host deleted meanwhile
    count there.
    """
    cutoff = clock.now() - (older_than if older_than is not None else app_settings.RETENTION)
    events = 0
    old_events = AuditEvent.objects.filter(created_at__lt=cutoff)
    for batch in _keyset_pages(old_events, "created_at", batch_size):
        events += AuditEvent.objects.delete_batch(batch)
    # ``delete()`` of enrollments loads each batch's rows (their events' SET_NULL needs the
    # collector), so a batch is the most it holds in memory.
    finished = Enrollment.objects.purgeable(cutoff)
    enrollments = 0
    for batch in _keyset_pages(finished, "created_at", batch_size):
        enrollments += finished.delete_batch(batch)
    return enrollments, events


def _after(rows: Any, field: str, key: tuple[Any, Any]) -> Any:
    """The rows past ``key`` = (``field``, pk) in (``field``, pk) order: the next keyset page.

    The range on ``field`` alone lets its index start there; a page never rereads the rows
    (or the index entries of rows deleted meanwhile) behind it.
    """
    value, pk = key
    return rows.filter(**{f"{field}__gte": value}).filter(
        Q(**{f"{field}__gt": value}) | Q(**{field: value, "pk__gt": pk})
    )


def _keyset_pages(rows: Any, field: str, batch_size: int) -> Iterator[list[Any]]:
    """Yield the primary keys of ``rows`` in (``field``, pk) order, ``batch_size`` at a time;
    each page is one short indexed read, however many rows lie behind or ahead of it."""
    key: tuple[Any, Any] | None = None
    while True:
        page = rows if key is None else _after(rows, field, key)
        keys = list(page.order_by(field, "pk").values_list(field, "pk")[:batch_size])
        if not keys:
            return
        key = keys[-1]
        yield [pk for _, pk in keys]
