"""The verify lease: while one request talks to Cognito about an enrollment, the row says so.

Concurrent verifies queue behind it instead of spending the code twice or counting wrong codes
out of order; a start waits for it before replacing the row. Never a database lock: a crashed
worker's lease simply runs out. The rule of a free lease is :func:`cognito_mfa.models.lease_free`.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from django.utils.translation import gettext_lazy

from .. import exceptions as exc
from ..conf import app_settings
from ..models import Enrollment, EnrollmentStatus
from . import clock
from .context import Context
from .ending import expire_enrollment, lock


def duration() -> timedelta:
    """How long a lease lasts: one Cognito call with its retries, and a little more."""
    per_call = app_settings.CONNECT_TIMEOUT + app_settings.READ_TIMEOUT
    return timedelta(seconds=per_call * max(1, app_settings.MAX_RETRY_ATTEMPTS) + 2)


def claim(enrollment: Enrollment, context: Context) -> datetime:
    """Take the verify lease: the only request allowed to call Cognito for this enrollment.

    Concurrent verifies wait their turn (so wrong codes are counted one by one and a right
    code is spent once) and get the outcome of the state left behind. Return the lease's end,
    which names it in every later compare-and-set.
    """
    deadline = time.monotonic() + duration().total_seconds()
    while True:
        timestamp = clock.now()
        lease = timestamp + duration()
        claimed = Enrollment.objects.claim_verify_lease(
            enrollment.pk, lease=lease, at=timestamp, max_attempts=app_settings.MAX_ATTEMPTS
        )
        if claimed:
            return lease
        enrollment.refresh_from_db()
        _raise_for_state(enrollment, context, timestamp)
        if time.monotonic() > deadline:
            raise exc.EnrollmentNotPending(
                gettext_lazy("A verification of this enrollment is in progress.")
            )
        time.sleep(0.02)


def release(enrollment: Enrollment, lease: datetime) -> None:
    """Give the lease up, changing nothing else: the verify came to no outcome."""
    Enrollment.objects.release_verify_lease(enrollment.pk, lease)


def _raise_for_state(enrollment: Enrollment, context: Context, timestamp: datetime) -> None:
    """Raise the error that matches a row that cannot be verified now (if any)."""
    if enrollment.status == EnrollmentStatus.LOCKED:
        raise exc.EnrollmentLocked()
    if enrollment.status == EnrollmentStatus.EXPIRED:
        raise exc.EnrollmentExpired()
    if enrollment.status != EnrollmentStatus.PENDING:
        raise exc.EnrollmentNotPending()
    if enrollment.expires_at <= timestamp:
        expire_enrollment(enrollment, context)
        raise exc.EnrollmentExpired()
    if enrollment.attempts >= app_settings.MAX_ATTEMPTS:
        lock(enrollment, context, enrollment.verify_lease_until)
        raise exc.EnrollmentLocked()
