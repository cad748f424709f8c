"""A pending enrollment's move to a terminal state: cancelled, locked or expired.

Each move is a compare-and-set on the row (:meth:`EnrollmentQuerySet.end_pending`), so it
happens once whatever the concurrency, and the one request that made it audits and announces
it. (Verified, the fourth terminal state, is the verify's own: :mod:`.verify`.)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.dispatch import Signal

from .. import signals
from ..models import AuditEvent, Enrollment, EnrollmentStatus, lease_free
from . import clock, events
from .context import Context

Kind = AuditEvent.Kind

# Each terminal state's audit kind, signal and outcome.
_ENDINGS: dict[str, tuple[str, Signal, str]] = {
    EnrollmentStatus.CANCELLED: (Kind.CANCELLED, signals.enrollment_cancelled, "ok"),
    EnrollmentStatus.LOCKED: (Kind.LOCKED, signals.enrollment_locked, "enrollment_locked"),
    EnrollmentStatus.EXPIRED: (Kind.EXPIRED, signals.enrollment_expired, "enrollment_expired"),
}


def end_pending(
    enrollment: Enrollment,
    context: Context,
    status: str,
    *,
    only_if: Q | None = None,
    detail: dict[str, Any] | None = None,
) -> bool:
    """Move a pending row to the terminal ``status`` by compare-and-set, audit it and announce
    it after commit. Return False (and change nothing) if the row was no longer pending, or
    ``only_if`` did not hold: another request got there first."""
    timestamp = clock.now()
    with transaction.atomic():
        changed = Enrollment.objects.end_pending(enrollment.pk, status, timestamp, only_if=only_if)
        if changed:
            ended(enrollment, context, status, timestamp, detail=detail)
    return changed


def ended(
    enrollment: Enrollment,
    context: Context,
    status: str,
    at: datetime,
    *,
    detail: dict[str, Any] | None = None,
) -> None:
    """Tell of the move to ``status`` the caller just wrote to the row's table: bring the row
    in hand up to date, audit the move and announce it after commit."""
    _bring_up_to_date(enrollment, status, at)
    record_end(enrollment, context, detail=detail)


def record_end(
    enrollment: Enrollment, context: Context, *, detail: dict[str, Any] | None = None
) -> None:
    """Audit and announce the terminal state the row in hand now holds."""
    kind, signal, outcome = _ENDINGS[enrollment.status]
    events.record(
        kind, context, enrollment=enrollment, outcome=outcome, detail=detail, signal=signal
    )


def expired_batch(batch: list[Enrollment], context: Context, at: datetime) -> None:
    """Tell of a batch the caller just expired in one UPDATE: the rows in hand brought up to
    date, their audit rows saved in one INSERT, one signal each after commit."""
    kind, signal, outcome = _ENDINGS[EnrollmentStatus.EXPIRED]
    rows = []
    for enrollment in batch:
        _bring_up_to_date(enrollment, EnrollmentStatus.EXPIRED, at)
        rows.append(events.audit_row(kind, context, enrollment=enrollment, outcome=outcome))
        events.announce(signal, context, user=enrollment.user, enrollment=enrollment)
    AuditEvent.objects.bulk_create(rows)


def _bring_up_to_date(enrollment: Enrollment, status: str, at: datetime) -> None:
    """The row in hand gets the columns its move to a terminal state wrote."""
    enrollment.status = status
    enrollment.encrypted_credential = None
    enrollment.verify_lease_until = None
    enrollment.finished_at = at


def lock(enrollment: Enrollment, context: Context, lease: datetime | None) -> bool:
    """Lock an enrollment at the wrong-code cap, unless another verify holds its lease."""
    return end_pending(
        enrollment, context, EnrollmentStatus.LOCKED, only_if=Q(verify_lease_until=lease)
    )


def expire_enrollment(
    enrollment: Enrollment, context: Context, *, lease: datetime | None = None
) -> bool:
    """Expire a pending enrollment (once: return False if another process did it first).

    A row whose verify is in flight is left to that verify, unless the caller holds ``lease``.
    """
    free = lease_free(clock.now())
    return end_pending(
        enrollment,
        context,
        EnrollmentStatus.EXPIRED,
        only_if=free if lease is None else free | Q(verify_lease_until=lease),
    )
