"""The row changes of ``cognito_mfa.models``: each compare-and-set changes a row once, and
only while the guard it names holds.

Run on SQLite and again on PostgreSQL (``make test``'s PostgreSQL pass), the two backends whose
value adaptation differs most (SQLite keeps datetimes and UUIDs as text).
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from cognito_mfa.models import (
    Enrollment,
    EnrollmentFlow,
    EnrollmentStatus,
    FailureCounter,
    lease_free,
    lock_user_row,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def user() -> Any:
    return get_user_model().objects.create(username="rows-user", email="r@example.com")


def _pending(user: Any, **fields: Any) -> Enrollment:
    now = timezone.now()
    values: dict[str, Any] = {
        "user": user,
        "cognito_username": user.get_username() if user is not None else "",
        "flow": EnrollmentFlow.ACCESS_TOKEN,
        "friendly_device_name": "phone",
        "expires_at": now + timedelta(minutes=10),
        "credential_expires_at": now + timedelta(hours=1),
        "encrypted_credential": b"ciphertext",
    }
    values.update(fields)
    return Enrollment.objects.create(**values)


def test_owned_finds_the_users_own_row_only(user: Any) -> None:
    stranger = get_user_model().objects.create(username="stranger")
    enrollment = _pending(user)
    found = Enrollment.objects.owned(enrollment.pk, user)
    assert found is not None
    assert found.pk == enrollment.pk
    assert isinstance(found.id, uuid.UUID)
    assert timezone.is_aware(found.expires_at)
    assert Enrollment.objects.owned(enrollment.pk, stranger) is None
    assert Enrollment.objects.owned(uuid.uuid4(), user) is None


def test_failure_record_reads_the_back_off_end(user: Any) -> None:
    assert FailureCounter.objects.record("nobody") is None
    blocked_until = timezone.now() + timedelta(seconds=61)
    FailureCounter.objects.create(
        cognito_username="counted", consecutive_failures=7, blocked_until=blocked_until
    )
    assert FailureCounter.objects.record("counted") == (7, blocked_until)
    FailureCounter.objects.create(cognito_username="unblocked", consecutive_failures=2)
    assert FailureCounter.objects.record("unblocked") == (2, None)


def test_failures_back_off_twice_as_long_each_time_past_the_budget() -> None:
    now = timezone.now()
    count = {"budget": 2, "backoff_base": timedelta(seconds=10), "at": now}
    for _ in range(2):
        FailureCounter.objects.count_failure("backing-off", **count)
    assert FailureCounter.objects.record("backing-off") == (2, None)
    FailureCounter.objects.count_failure("backing-off", **count)
    assert FailureCounter.objects.record("backing-off") == (3, now + timedelta(seconds=10))
    FailureCounter.objects.count_failure("backing-off", **count)
    assert FailureCounter.objects.record("backing-off") == (4, now + timedelta(seconds=20))
    FailureCounter.objects.forget("backing-off")
    assert FailureCounter.objects.record("backing-off") is None


def test_lease_claim_is_compare_and_set(user: Any) -> None:
    enrollment = _pending(user)
    now = timezone.now()
    lease = now + timedelta(seconds=9)
    claim = {"at": now, "max_attempts": 5}
    assert Enrollment.objects.claim_verify_lease(enrollment.pk, lease=lease, **claim) is True
    # Held: nobody else gets it, however often they ask.
    assert Enrollment.objects.claim_verify_lease(enrollment.pk, lease=lease, **claim) is False
    enrollment.refresh_from_db()
    assert enrollment.verify_lease_until == lease
    assert enrollment.verify_in_flight(now)
    # Run out: the next request may take it.
    later = lease + timedelta(seconds=1)
    assert not enrollment.verify_in_flight(later)
    assert Enrollment.objects.claim_verify_lease(
        enrollment.pk, lease=later + timedelta(seconds=9), at=later, max_attempts=5
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"status": EnrollmentStatus.VERIFIED, "encrypted_credential": None},
        {"status": EnrollmentStatus.LOCKED, "encrypted_credential": None},
        {"expires_at": timezone.now() - timedelta(seconds=1)},
        {"attempts": 5},
    ],
    ids=["verified", "locked", "expired", "attempts-used"],
)
def test_lease_claim_refuses_rows_that_cannot_be_verified(user: Any, fields: Any) -> None:
    enrollment = _pending(user, **fields)
    now = timezone.now()
    claimed = Enrollment.objects.claim_verify_lease(
        enrollment.pk, lease=now + timedelta(seconds=9), at=now, max_attempts=5
    )
    assert claimed is False
    enrollment.refresh_from_db()
    assert enrollment.verify_lease_until is None


def test_a_lease_is_released_only_by_its_holder(user: Any) -> None:
    now = timezone.now()
    lease = now + timedelta(seconds=9)
    enrollment = _pending(user, verify_lease_until=lease)
    Enrollment.objects.release_verify_lease(enrollment.pk, lease + timedelta(seconds=1))
    enrollment.refresh_from_db()
    assert enrollment.verify_lease_until == lease
    Enrollment.objects.release_verify_lease(enrollment.pk, lease)
    enrollment.refresh_from_db()
    assert enrollment.verify_lease_until is None


def test_mark_verified_needs_the_lease_and_drops_the_credential(user: Any) -> None:
    admin = get_user_model().objects.create(username="helpdesk")
    enrollment = _pending(user)
    now = timezone.now()
    lease = now + timedelta(seconds=9)
    assert Enrollment.objects.claim_verify_lease(enrollment.pk, lease=lease, at=now, max_attempts=5)
    arguments = {
        "at": now,
        "verified_by": admin,
        "device_name": "new phone",
        "preference_pending": True,
    }
    other_lease = lease + timedelta(seconds=1)
    assert Enrollment.objects.mark_verified(enrollment.pk, lease=other_lease, **arguments) is False
    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.PENDING
    assert enrollment.encrypted_credential is not None

    assert Enrollment.objects.mark_verified(enrollment.pk, lease=lease, **arguments) is True
    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.VERIFIED
    assert (enrollment.verified_at, enrollment.finished_at) == (now, now)
    assert enrollment.verified_by == admin
    assert enrollment.friendly_device_name == "new phone"
    assert enrollment.encrypted_credential is None
    assert enrollment.verify_lease_until is None
    assert enrollment.preference_pending is True
    # Exactly once.
    assert Enrollment.objects.mark_verified(enrollment.pk, lease=lease, **arguments) is False


def test_mark_verified_names_the_proven_user(user: Any) -> None:
    enrollment = _pending(None, cognito_username="rows-user", flow=EnrollmentFlow.CHALLENGE)
    now = timezone.now()
    lease = now + timedelta(seconds=9)
    assert Enrollment.objects.claim_verify_lease(enrollment.pk, lease=lease, at=now, max_attempts=5)
    assert Enrollment.objects.mark_verified(
        enrollment.pk,
        lease=lease,
        at=now,
        verified_by=None,
        device_name="",
        preference_pending=False,
        user=user,
    )
    assert Enrollment.objects.get(pk=enrollment.pk).user == user


def test_end_pending_ends_a_row_once_and_only_while_its_guard_holds(user: Any) -> None:
    now = timezone.now()
    leased = _pending(user, verify_lease_until=now + timedelta(seconds=9))
    # No guard: a start's supersede, which holds the row lock, ends a leased row too.
    assert Enrollment.objects.end_pending(leased.pk, EnrollmentStatus.CANCELLED, now) is True
    leased.refresh_from_db()
    assert (leased.status, leased.encrypted_credential, leased.finished_at) == (
        EnrollmentStatus.CANCELLED,
        None,
        now,
    )
    assert Enrollment.objects.end_pending(leased.pk, EnrollmentStatus.EXPIRED, now) is False
    assert Enrollment.objects.get(pk=leased.pk).status == EnrollmentStatus.CANCELLED


def test_end_pending_leaves_a_row_whose_verify_is_in_flight(user: Any) -> None:
    now = timezone.now()
    enrollment = _pending(user, verify_lease_until=now + timedelta(seconds=9))
    free = lease_free(now)
    assert not Enrollment.objects.end_pending(
        enrollment.pk, EnrollmentStatus.EXPIRED, now, only_if=free
    )
    assert Enrollment.objects.get(pk=enrollment.pk).status == EnrollmentStatus.PENDING
    later = now + timedelta(seconds=10)
    assert Enrollment.objects.end_pending(
        enrollment.pk, EnrollmentStatus.EXPIRED, later, only_if=lease_free(later)
    )


def test_a_wrong_code_counts_on_the_lease_holders_row_and_locks_at_the_cap(user: Any) -> None:
    now = timezone.now()
    lease = now + timedelta(seconds=9)
    enrollment = _pending(user, attempts=3, verify_lease_until=lease)
    with transaction.atomic():
        row, ours = Enrollment.objects.record_wrong_code(
            enrollment.pk, lease=lease + timedelta(seconds=1), at=now, max_attempts=5
        )
    assert (ours, row.attempts) == (False, 3)
    with transaction.atomic():
        row, ours = Enrollment.objects.record_wrong_code(
            enrollment.pk, lease=lease, at=now, max_attempts=5
        )
    assert (ours, row.attempts, row.status, row.verify_lease_until) == (
        True,
        4,
        EnrollmentStatus.PENDING,
        None,
    )
    Enrollment.objects.filter(pk=enrollment.pk).update(verify_lease_until=lease)
    with transaction.atomic():
        row, ours = Enrollment.objects.record_wrong_code(
            enrollment.pk, lease=lease, at=now, max_attempts=5
        )
    stored = Enrollment.objects.get(pk=enrollment.pk)
    assert (stored.attempts, stored.status, stored.encrypted_credential, stored.finished_at) == (
        5,
        EnrollmentStatus.LOCKED,
        None,
        now,
    )


def test_an_owed_preference_is_settled_once_or_forgiven(user: Any) -> None:
    owed = _pending(
        user,
        status=EnrollmentStatus.VERIFIED,
        encrypted_credential=None,
        preference_pending=True,
    )
    assert list(Enrollment.objects.owed_preferences()) == [owed]
    assert Enrollment.objects.settle_owed_preference(owed.pk) is True
    assert Enrollment.objects.settle_owed_preference(owed.pk) is False
    Enrollment.objects.filter(pk=owed.pk).update(preference_pending=True)
    Enrollment.objects.forgive_owed_preferences("someone-else")
    assert Enrollment.objects.owed_preferences().count() == 1
    Enrollment.objects.forgive_owed_preferences(user.get_username())
    assert not Enrollment.objects.owed_preferences().exists()


def test_pending_rows_to_replace_match_by_account_or_cognito_name(user: Any) -> None:
    mine = _pending(user)
    # A challenge row of the same Cognito user without a site account.
    by_name = _pending(None, cognito_username=user.get_username(), flow=EnrollmentFlow.CHALLENGE)
    _pending(user, status=EnrollmentStatus.CANCELLED, encrypted_credential=None)
    other = get_user_model().objects.create(username="other")
    _pending(other)
    with transaction.atomic():
        found = Enrollment.objects.lock_pending_to_replace(user, user.get_username())
    assert {row.pk for row in found} == {mine.pk, by_name.pk}
    assert {row.status for row in found} == {EnrollmentStatus.PENDING}


def test_a_second_pending_enrollment_of_a_user_is_refused_by_the_database(user: Any) -> None:
    _pending(user)
    with pytest.raises(IntegrityError), transaction.atomic():
        _pending(user)


@pytest.mark.django_db(transaction=True)
def test_user_row_lock_holds_until_the_transaction_ends(user: Any) -> None:
    """PostgreSQL: another connection cannot take the row meanwhile. SQLite has no row locks
    (one writer holds the whole database): the ORM reads the row plainly there."""
    if connection.vendor == "sqlite":
        with transaction.atomic():
            lock_user_row(user)
        return

    outcome: dict[str, str] = {}

    def try_to_lock() -> None:
        try:
            with transaction.atomic():
                get_user_model().objects.select_for_update(nowait=True).get(pk=user.pk)
            outcome["other"] = "locked it"
        except Exception as error:  # the driver's lock error is the point
            outcome["other"] = type(error).__name__
        finally:
            connection.close()

    with transaction.atomic():
        lock_user_row(user)
        thread = threading.Thread(target=try_to_lock)
        thread.start()
        thread.join(10)
    assert outcome["other"] == "OperationalError"
    thread = threading.Thread(target=try_to_lock)
    thread.start()
    thread.join(10)
    assert outcome["other"] == "locked it"
