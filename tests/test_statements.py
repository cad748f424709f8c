"""The hot-path SQL in ``cognito_mfa.statements`` reads and writes exactly what the ORM would.

Run on SQLite and again on PostgreSQL (``make test``'s second pass), the two backends whose
value adaptation differs most (SQLite keeps datetimes and UUIDs as text).
"""

from __future__ import annotations

import gc
import threading
import uuid
import weakref
from datetime import timedelta
from typing import Any
from unittest.mock import patch

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import UserManager
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.db.models import CharField, QuerySet
from django.db.models.lookups import Exact, IExact
from django.db.models.signals import post_save, pre_save
from django.test.utils import CaptureQueriesContext, register_lookup
from django.utils import timezone

from cognito_mfa import statements
from cognito_mfa.models import (
    AuditEvent,
    Enrollment,
    EnrollmentFlow,
    EnrollmentStatus,
    FailureCounter,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def user() -> Any:
    return get_user_model().objects.create(username="statements-user", email="s@example.com")


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


def _field_values(enrollment: Enrollment) -> dict[str, Any]:
    values = {f.attname: getattr(enrollment, f.attname) for f in Enrollment._meta.concrete_fields}
    # BinaryField comes back as bytes or memoryview depending on the driver, for both paths.
    values["encrypted_credential"] = bytes(values["encrypted_credential"] or b"")
    return values


def test_owned_enrollment_reads_every_field_as_the_orm_does(user: Any) -> None:
    enrollment = _pending(user, verify_lease_until=timezone.now() + timedelta(seconds=5))
    read = statements.owned_enrollment(enrollment.pk, user)
    assert read is not None
    assert _field_values(read) == _field_values(Enrollment.objects.get(pk=enrollment.pk))
    assert isinstance(read.id, uuid.UUID)
    assert timezone.is_aware(read.expires_at)
    assert read._state.adding is False
    assert read._state.db == "default"


def test_owned_enrollment_is_none_for_someone_elses_or_unknown_id(user: Any) -> None:
    stranger = get_user_model().objects.create(username="stranger")
    enrollment = _pending(user)
    assert statements.owned_enrollment(enrollment.pk, stranger) is None
    assert statements.owned_enrollment(uuid.uuid4(), user) is None


def test_failure_record_converts_the_back_off_end(user: Any) -> None:
    assert statements.failure_record("nobody") is None
    blocked_until = timezone.now() + timedelta(seconds=61)
    FailureCounter.objects.create(
        cognito_username="counted", consecutive_failures=7, blocked_until=blocked_until
    )
    assert statements.failure_record("counted") == (7, blocked_until)
    FailureCounter.objects.create(cognito_username="unblocked", consecutive_failures=2)
    assert statements.failure_record("unblocked") == (2, None)


def test_lease_claim_is_compare_and_set(user: Any) -> None:
    enrollment = _pending(user)
    now = timezone.now()
    lease = now + timedelta(seconds=9)
    claim = {"timestamp": now, "max_attempts": 5}
    assert statements.claim_verify_lease(enrollment.pk, lease=lease, **claim) is True
    # Held: nobody else gets it, however often they ask.
    assert statements.claim_verify_lease(enrollment.pk, lease=lease, **claim) is False
    enrollment.refresh_from_db()
    assert enrollment.verify_lease_until == lease
    # Run out: the next request may take it.
    later = lease + timedelta(seconds=1)
    assert statements.claim_verify_lease(
        enrollment.pk, lease=later + timedelta(seconds=9), timestamp=later, max_attempts=5
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
    claimed = statements.claim_verify_lease(
        enrollment.pk, lease=now + timedelta(seconds=9), timestamp=now, max_attempts=5
    )
    assert claimed is False
    enrollment.refresh_from_db()
    assert enrollment.verify_lease_until is None


def _claim_own(enrollment_id: Any, user: Any, timestamp: Any = None) -> Enrollment | None:
    now = timestamp or timezone.now()
    return statements.claim_own_verify_lease(
        enrollment_id,
        user,
        flow=EnrollmentFlow.ACCESS_TOKEN,
        lease=now + timedelta(seconds=9),
        timestamp=now,
        max_attempts=5,
    )


def test_own_lease_claim_returns_the_claimed_row_as_the_orm_reads_it(user: Any) -> None:
    enrollment = _pending(user)
    now = timezone.now()
    with CaptureQueriesContext(connection) as queries:
        claimed = _claim_own(enrollment.pk, user, now)
    assert len(queries.captured_queries) == 1
    assert claimed is not None
    assert claimed.verify_lease_until == now + timedelta(seconds=9)
    assert _field_values(claimed) == _field_values(Enrollment.objects.get(pk=enrollment.pk))
    assert claimed._state.adding is False
    # Held: a second claim, by the owner or through the plain compare-and-set, gets nothing.
    assert _claim_own(enrollment.pk, user) is None
    assert not statements.claim_verify_lease(
        enrollment.pk, lease=now + timedelta(seconds=9), timestamp=now, max_attempts=5
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"status": EnrollmentStatus.VERIFIED, "encrypted_credential": None},
        {"expires_at": timezone.now() - timedelta(seconds=1)},
        {"attempts": 5},
        {"flow": EnrollmentFlow.CHALLENGE},
        {"verify_lease_until": timezone.now() + timedelta(days=1)},  # evaluated at collection
    ],
    ids=["verified", "expired", "attempts-used", "challenge-flow", "leased"],
)
def test_own_lease_claim_changes_nothing_it_may_not_claim(user: Any, fields: Any) -> None:
    enrollment = _pending(user, **fields)
    before = _field_values(Enrollment.objects.get(pk=enrollment.pk))
    assert _claim_own(enrollment.pk, user) is None
    assert _field_values(Enrollment.objects.get(pk=enrollment.pk)) == before


def test_own_lease_claim_takes_over_a_lease_that_ran_out(user: Any) -> None:
    now = timezone.now()
    enrollment = _pending(user, verify_lease_until=now - timedelta(seconds=1))
    claimed = _claim_own(enrollment.pk, user, now)
    assert claimed is not None
    assert claimed.verify_lease_until == now + timedelta(seconds=9)


def test_own_lease_claim_is_none_for_someone_elses_or_unknown_id(user: Any) -> None:
    stranger = get_user_model().objects.create(username="stranger")
    enrollment = _pending(user)
    assert _claim_own(enrollment.pk, stranger) is None
    assert _claim_own(uuid.uuid4(), user) is None
    assert Enrollment.objects.get(pk=enrollment.pk).verify_lease_until is None


def test_own_lease_claim_declines_a_backend_without_update_returning(
    user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    enrollment = _pending(user)
    assert statements.returns_rows_from_update(connection)  # both backends tested here
    monkeypatch.setattr(connection, "vendor", "mysql")  # MariaDB: RETURNING on INSERT only
    assert not statements.returns_rows_from_update(connection)
    assert _claim_own(enrollment.pk, user) is None
    monkeypatch.undo()
    monkeypatch.setattr(connection.features, "can_return_columns_from_insert", False)
    assert not statements.returns_rows_from_update(connection)  # SQLite before 3.35
    assert _claim_own(enrollment.pk, user) is None
    assert Enrollment.objects.get(pk=enrollment.pk).verify_lease_until is None


def test_mark_verified_needs_the_lease_and_drops_the_credential(user: Any) -> None:
    admin = get_user_model().objects.create(username="helpdesk")
    enrollment = _pending(user)
    now = timezone.now()
    lease = now + timedelta(seconds=9)
    assert statements.claim_verify_lease(enrollment.pk, lease=lease, timestamp=now, max_attempts=5)
    arguments = {
        "timestamp": now,
        "verified_by": admin,
        "device_name": "new phone",
        "preference_pending": True,
    }
    other_lease = lease + timedelta(seconds=1)
    assert statements.mark_verified(enrollment.pk, lease=other_lease, **arguments) is False
    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.PENDING
    assert enrollment.encrypted_credential is not None

    assert statements.mark_verified(enrollment.pk, lease=lease, **arguments) is True
    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.VERIFIED
    assert (enrollment.verified_at, enrollment.finished_at) == (now, now)
    assert enrollment.verified_by == admin
    assert enrollment.friendly_device_name == "new phone"
    assert enrollment.encrypted_credential is None
    assert enrollment.verify_lease_until is None
    assert enrollment.preference_pending is True
    # Exactly once.
    assert statements.mark_verified(enrollment.pk, lease=lease, **arguments) is False


def test_pending_enrollments_to_replace_match_by_account_or_cognito_name(user: Any) -> None:
    mine = _pending(user)
    # A challenge row of the same Cognito user without a site account.
    by_name = _pending(None, cognito_username=user.get_username(), flow=EnrollmentFlow.CHALLENGE)
    _pending(user, status=EnrollmentStatus.CANCELLED, encrypted_credential=None)
    other = get_user_model().objects.create(username="other")
    _pending(other)
    with transaction.atomic():
        found = statements.pending_enrollments_to_replace(user, user.get_username())
    assert {row.pk for row in found} == {mine.pk, by_name.pk}
    assert {row.status for row in found} == {EnrollmentStatus.PENDING}


@pytest.mark.django_db(transaction=True)
def test_user_row_lock_holds_until_the_transaction_ends(user: Any) -> None:
    """PostgreSQL: another connection cannot take the row meanwhile. SQLite has no row locks
    (one writer holds the whole database), so no statement is sent there, as the ORM's
    select_for_update() sends none."""
    if connection.vendor == "sqlite":
        with CaptureQueriesContext(connection) as captured, transaction.atomic():
            statements.lock_user_row(user)
        assert [q["sql"] for q in captured.captured_queries if "SELECT" in q["sql"]] == []
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
        statements.lock_user_row(user)
        thread = threading.Thread(target=try_to_lock)
        thread.start()
        thread.join(10)
    assert outcome["other"] == "OperationalError"
    thread = threading.Thread(target=try_to_lock)
    thread.start()
    thread.join(10)
    assert outcome["other"] == "locked it"


def test_insert_writes_the_row_the_orm_reads_back_and_sends_model_signals(user: Any) -> None:
    seen: list[tuple[str, Any, dict[str, Any]]] = []

    def pre(sender: Any, instance: Any, **kwargs: Any) -> None:
        seen.append(("pre_save", instance.pk, kwargs))

    def post(sender: Any, instance: Any, **kwargs: Any) -> None:
        seen.append(("post_save", instance.pk, kwargs))

    now = timezone.now()
    enrollment = Enrollment(
        user=user,
        cognito_username="statements-user",
        flow=EnrollmentFlow.ACCESS_TOKEN,
        expires_at=now + timedelta(minutes=10),
        encrypted_credential=b"\x00ciphertext\xff",
        created_at=now,
    )
    event = AuditEvent(
        enrollment=enrollment,
        user=user,
        cognito_username="statements-user",
        kind=AuditEvent.Kind.STARTED,
        source="api",
        ip_address="2001:db8::1",
        detail={"attempts_remaining": 4, "note": "ünïcode"},
        created_at=now,
    )
    for signal, receiver in ((pre_save, pre), (post_save, post)):
        for model in (Enrollment, AuditEvent):
            signal.connect(receiver, sender=model)
    try:
        statements.insert(enrollment)
        statements.insert(event)
    finally:
        for signal, receiver in ((pre_save, pre), (post_save, post)):
            for model in (Enrollment, AuditEvent):
                signal.disconnect(receiver, sender=model)

    assert [name for name, _, _ in seen] == ["pre_save", "post_save", "pre_save", "post_save"]
    assert [kwargs["created"] for name, _, kwargs in seen if name == "post_save"] == [True, True]
    # The audit row's id comes from the database, and is set before post_save.
    assert seen[2][1] is None
    assert isinstance(event.pk, int)
    assert seen[3][1] == event.pk
    assert (enrollment._state.adding, event._state.adding) == (False, False)

    stored = Enrollment.objects.get(pk=enrollment.pk)
    assert _field_values(stored) == _field_values(enrollment)
    stored_event = AuditEvent.objects.get(pk=event.pk)
    assert stored_event.enrollment_id == enrollment.pk
    assert stored_event.ip_address == "2001:db8::1"
    assert stored_event.detail == {"attempts_remaining": 4, "note": "ünïcode"}
    assert stored_event.created_at == now


def test_insert_raises_integrity_error_for_a_second_pending_enrollment(user: Any) -> None:
    """The start flow retries on this error; the raw insert must raise Django's."""
    _pending(user)
    second = Enrollment(
        user=user,
        cognito_username=user.get_username(),
        flow=EnrollmentFlow.ACCESS_TOKEN,
        expires_at=timezone.now() + timedelta(minutes=10),
        encrypted_credential=b"x",
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        statements.insert(second)
    assert Enrollment.objects.filter(user=user).count() == 1


def test_insert_reads_the_new_id_back_on_a_backend_without_returning(
    user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite before 3.35 (and MySQL) have no INSERT ... RETURNING: the id then comes from
    the backend's last insert id. PostgreSQL always returns it."""
    if connection.vendor == "sqlite":
        monkeypatch.setattr(connection.features, "can_return_columns_from_insert", False)
    first = AuditEvent(user=user, kind=AuditEvent.Kind.STARTED, source="api")
    second = AuditEvent(user=user, kind=AuditEvent.Kind.VERIFIED, source="api")
    with CaptureQueriesContext(connection) as captured:
        statements.insert(first)
        statements.insert(second)
    returning = [" RETURNING " in query["sql"] for query in captured.captured_queries]
    assert returning == [connection.vendor != "sqlite"] * 2
    assert isinstance(first.pk, int)
    assert second.pk != first.pk
    assert AuditEvent.objects.get(pk=second.pk).kind == AuditEvent.Kind.VERIFIED


def test_insert_refuses_an_unsaved_related_object(user: Any) -> None:
    unsaved = get_user_model()(username="never-saved")
    event = AuditEvent(user=unsaved, kind=AuditEvent.Kind.STARTED, source="api")
    with pytest.raises(ValueError, match="unsaved related object"):
        statements.insert(event)
    assert AuditEvent.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_reading_from_many_threads_keeps_no_connection_alive(user: Any) -> None:
    """Each thread's connection goes away with the thread (the converters are kept on the
    connection, so nothing module-wide refers to it)."""
    enrollment = _pending(user)
    wrappers: list[Any] = []

    def read() -> None:
        try:
            assert statements.owned_enrollment(enrollment.pk, user) is not None
            wrappers.append(weakref.ref(connections[DEFAULT_DB_ALIAS]))
        finally:
            connection.close()

    for _ in range(5):
        thread = threading.Thread(target=read)
        thread.start()
        thread.join(10)
    gc.collect()
    assert len(wrappers) == 5
    assert [ref() for ref in wrappers] == [None] * 5


# --- the adapter's user lookup -------------------------------------------------------------


def _user_values(user: Any) -> dict[str, Any]:
    return {f.attname: getattr(user, f.attname) for f in type(user)._meta.concrete_fields}


def test_user_by_username_reads_every_field_as_the_orm_does(user: Any) -> None:
    user.last_login = timezone.now() - timedelta(days=2)
    user.is_staff = True
    user.save()
    user_model = get_user_model()
    found = statements.user_by_username(user_model, "statements-user")
    assert found is not None
    assert type(found) is user_model
    assert _user_values(found) == _user_values(user_model.objects.get(pk=user.pk))
    assert timezone.is_aware(found.last_login)
    assert found.is_staff is True
    assert found._state.adding is False
    assert found._state.db == "default"


def test_user_by_username_is_exact_and_none_for_no_row(user: Any) -> None:
    user_model = get_user_model()
    assert statements.user_by_username(user_model, "nobody") is None
    assert statements.user_by_username(user_model, "STATEMENTS-USER") is None
    assert statements.user_by_username(user_model, "statements-user%") is None
    with CaptureQueriesContext(connection) as queries:
        statements.user_by_username(user_model, "statements-user")
    assert len(queries.captured_queries) == 1


class _HidesInactive(UserManager):
    def get_queryset(self) -> Any:
        return super().get_queryset().filter(is_active=True)


class _OwnQuerySet(QuerySet):
    pass


class _OwnGetOrCreate(UserManager):
    def get_or_create(self, defaults: Any = None, **kwargs: Any) -> Any:
        return super().get_or_create(defaults, **kwargs)


def _as_default_manager(manager: Any) -> Any:
    """Make ``manager`` the user model's default manager for the duration of a test."""
    user_model = get_user_model()
    manager.model, manager.name = user_model, "objects"
    return patch.dict(user_model._meta.__dict__, {"default_manager": manager})


@pytest.mark.parametrize(
    "manager",
    [
        _HidesInactive(),
        UserManager.from_queryset(_OwnQuerySet)(),
        _OwnGetOrCreate(),
        UserManager().db_manager("default"),
    ],
    ids=["own get_queryset", "own QuerySet", "own get_or_create", "bound to a database"],
)
def test_user_by_username_leaves_a_host_managers_lookup_to_the_orm(user: Any, manager: Any) -> None:
    with _as_default_manager(manager):
        assert statements.user_by_username(get_user_model(), "statements-user") is None


def test_user_by_username_leaves_multi_table_inheritance_to_the_orm(user: Any) -> None:
    user_model = get_user_model()
    with patch.object(user_model._meta, "parents", {object: None}):
        assert statements.user_by_username(user_model, "statements-user") is None


class _CaseInsensitiveExact(Exact):
    def as_sql(self, compiler: Any, connection: Any) -> Any:
        return IExact(self.lhs, self.rhs).as_sql(compiler, connection)


def test_user_by_username_leaves_a_sites_own_exact_lookup_to_the_orm(user: Any) -> None:
    with register_lookup(CharField, _CaseInsensitiveExact, lookup_name="exact"):
        assert statements.user_by_username(get_user_model(), "statements-user") is None
    assert statements.user_by_username(get_user_model(), "statements-user") is not None


def test_a_stock_manager_subclass_keeps_the_short_lookup(user: Any) -> None:
    class PlainSubclass(UserManager):
        def create_superuser_with_defaults(self) -> None:  # new methods change no lookup
            raise NotImplementedError

    with _as_default_manager(PlainSubclass()):
        found = statements.user_by_username(get_user_model(), "statements-user")
    assert found is not None
    assert found.pk == user.pk
