"""Running the app for a large site: admin pages, cleanup, key rotation and migrations at scale."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterator
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from cognito_mfa import crypto, flows
from cognito_mfa.models import AuditEvent, CognitoIdentity, Enrollment
from tests.admin_support import make_staff
from tests.support import run_as_hosts

# --- the admin: queries per page do not grow with the rows ------------------------------------


def _add_rows(start: int, stop: int, *, events_per_row: int = 3) -> list[Enrollment]:
    """Users ``start..stop-1``, an enrollment each and some audit events naming other users."""
    user_model = get_user_model()
    user_model.objects.bulk_create(
        [user_model(username=f"user{i}", email=f"user{i}@example.test") for i in range(start, stop)]
    )
    users = list(user_model.objects.filter(username__startswith="user").order_by("pk"))
    fresh = users[start:stop]
    now = timezone.now()
    enrollments = Enrollment.objects.bulk_create(
        [
            Enrollment(
                user=user,
                cognito_username=user.username,
                flow="access_token",
                status="verified",
                created_at=now - timedelta(minutes=index),
                expires_at=now,
                verified_at=now,
                finished_at=now,
                # Another user verified it: one more related row per line of the list.
                verified_by=users[(start + index + 1) % len(users)],
            )
            for index, user in enumerate(fresh)
        ]
    )
    AuditEvent.objects.bulk_create(
        [
            AuditEvent(
                enrollment=enrollment,
                user=enrollment.user,
                actor=users[(start + index + number) % len(users)],
                cognito_username=enrollment.cognito_username,
                kind="verification_failed",
                source="admin",
                outcome="invalid_code",
                ip_address="192.0.2.7",
                created_at=now - timedelta(seconds=index * events_per_row + number),
            )
            for index, enrollment in enumerate(enrollments)
            for number in range(events_per_row)
        ]
    )
    return enrollments


def _queries_per_page(client: Client, urls: dict[str, str]) -> dict[str, int]:
    counts = {}
    for name, url in urls.items():
        client.get(url)  # warm the process-wide caches (content types) first
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        assert response.status_code == 200, (name, response.status_code)
        counts[name] = len(captured)
    return counts


@pytest.mark.django_db
def test_admin_pages_make_as_many_queries_for_300_rows_as_for_10() -> None:
    staff = make_staff("desk")
    client = Client()
    client.force_login(staff)
    enrollments = reverse("admin:cognito_mfa_enrollment_changelist")
    events = reverse("admin:cognito_mfa_auditevent_changelist")

    def pages(enrollment: Enrollment) -> dict[str, str]:
        event = AuditEvent.objects.filter(enrollment=enrollment, user__isnull=False).first()
        assert event is not None
        return {
            "enrollments": enrollments,
            "enrollments searched and filtered": f"{enrollments}?q=user1&status__exact=verified"
            "&flow__exact=access_token",
            "enrollments by date": f"{enrollments}?created_at__year={enrollment.created_at.year}",
            "enrollment page with its events": reverse(
                "admin:cognito_mfa_enrollment_change", args=[enrollment.pk]
            ),
            "events": events,
            "events searched and filtered": f"{events}?q=user1&kind__exact=verification_failed"
            "&source__exact=admin&outcome__exact=invalid_code",
            "event page": reverse("admin:cognito_mfa_auditevent_change", args=[event.pk]),
        }

    few = _add_rows(0, 10)
    small = _queries_per_page(client, pages(few[0]))
    many = _add_rows(10, 300, events_per_row=4)  # 1,160 more events
    # One enrollment with a long trail: the inline lists every event and its actor.
    AuditEvent.objects.bulk_create(
        [
            AuditEvent(enrollment=many[0], actor=staff, kind="state_refreshed", source="admin")
            for _ in range(200)
        ]
    )
    assert Enrollment.objects.count() == 300
    assert AuditEvent.objects.count() >= 1000
    large = _queries_per_page(client, pages(many[0]))
    assert large == small


# --- cleanup_enrollments: finished rows past the retention, in batches ------------------------


def _old_finished(count: int, *, prefix: str = "old", events: bool = False) -> list[Any]:
    """``count`` verified enrollments finished 200 days ago (past the 90 days' retention)."""
    long_ago = timezone.now() - timedelta(days=200)
    rows = Enrollment.objects.bulk_create(
        [
            Enrollment(
                cognito_username=f"{prefix}{index}",
                flow="access_token",
                status="verified",
                created_at=long_ago,
                expires_at=long_ago,
                finished_at=long_ago,
            )
            for index in range(count)
        ],
        batch_size=1000,
    )
    if events:
        # Recent events of old enrollments: kept, their enrollment link set to NULL.
        AuditEvent.objects.bulk_create(
            [AuditEvent(enrollment=row, kind="verified", source="api") for row in rows],
            batch_size=1000,
        )
    return [row.pk for row in rows]


def _peak_memory(run: Callable[[], Any]) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        result = run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


@pytest.mark.django_db
def test_purging_a_large_backlog_takes_no_more_memory_than_a_small_one(settings: Any) -> None:
    settings.COGNITO_MFA_RETENTION = timedelta(days=90)
    _old_finished(1_000, prefix="small")
    small, small_peak = _peak_memory(flows.purge_finished)
    _old_finished(8_000, prefix="large")
    large, large_peak = _peak_memory(flows.purge_finished)
    assert (small, large) == ((1_000, 0), (8_000, 0))
    assert not Enrollment.objects.exists()
    # All rows at once took about 1.2 kB per row (10 MB here); batches keep it flat.
    assert large_peak < 2 * small_peak, (small_peak, large_peak)


@pytest.mark.django_db
def test_purging_in_batches_deletes_exactly_what_the_retention_allows(settings: Any) -> None:
    settings.COGNITO_MFA_RETENTION = timedelta(days=90)
    now = timezone.now()
    old_ids = set(_old_finished(23, events=True))
    old_event = AuditEvent.objects.create(
        kind="verified", source="api", created_at=now - timedelta(days=91)
    )
    for status in ("locked", "expired", "cancelled"):
        old_ids.add(
            Enrollment.objects.create(
                cognito_username=f"never-finished-{status}",
                flow="challenge",
                status=status,
                created_at=now - timedelta(days=120),
                expires_at=now - timedelta(days=120),
            ).pk
        )
    kept = {
        Enrollment.objects.create(  # pending: never purged, whatever its age
            cognito_username="pending",
            flow="challenge",
            created_at=now - timedelta(days=120),
            expires_at=now - timedelta(days=120),
        ).pk,
        Enrollment.objects.create(  # finished inside the retention
            cognito_username="recent",
            flow="access_token",
            status="verified",
            created_at=now - timedelta(days=120),
            expires_at=now - timedelta(days=120),
            finished_at=now - timedelta(days=89),
        ).pk,
    }

    assert flows.purge_finished(batch_size=4) == (26, 1)
    assert set(Enrollment.objects.values_list("pk", flat=True)) == kept
    assert not AuditEvent.objects.filter(pk=old_event.pk).exists()
    assert AuditEvent.objects.count() == 23
    assert not AuditEvent.objects.filter(enrollment__isnull=False).exists()
    assert flows.purge_finished(batch_size=4) == (0, 0)


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_purging_on_several_hosts_at_once_deletes_each_row_once(settings: Any) -> None:
    settings.COGNITO_MFA_RETENTION = timedelta(days=90)
    ids = _old_finished(300, events=True)
    counts = run_as_hosts(4, lambda: flows.purge_finished(batch_size=7)[0])
    assert sum(counts) == len(ids)
    assert not Enrollment.objects.exists()
    assert AuditEvent.objects.filter(enrollment__isnull=True).count() == len(ids)


# --- rotate_encryption_keys: a batch size that is not a positive number -----------------------


@pytest.mark.parametrize("size", ["0", "-5"])
@pytest.mark.django_db
def test_rotation_refuses_a_batch_size_below_one_before_changing_anything(
    settings: Any, size: str
) -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.COGNITO_MFA_ENCRYPTION_KEYS = [old_key]
    now = timezone.now()
    row = Enrollment.objects.create(
        cognito_username="pending",
        flow="access_token",
        expires_at=now + timedelta(minutes=10),
        encrypted_credential=crypto.encrypt("credential"),
    )
    before = bytes(row.encrypted_credential)
    settings.COGNITO_MFA_ENCRYPTION_KEYS = [new_key, old_key]
    with pytest.raises(CommandError, match=r"--batch-size must be a whole number of 1 or more"):
        call_command("rotate_encryption_keys", "--batch-size", size, stdout=StringIO())
    row.refresh_from_db()
    assert bytes(row.encrypted_credential) == before


# --- migrations: forwards with data written by each older schema, and back --------------------

APP = "cognito_mfa"
LATEST = "0006_field_labels_for_translation"


def _migrate(name: str | None) -> Any:
    """Migrate cognito_mfa to ``name`` (None: zero); return the models of that state."""
    MigrationExecutor(connection).migrate([(APP, name)])
    executor = MigrationExecutor(connection)
    return executor.loader.project_state([(APP, name)] if name else []).apps


@pytest.fixture
def back_to_latest() -> Iterator[None]:
    """Leave the test database at the latest migration, however the test ended."""
    yield
    tables = set(connection.introspection.table_names())
    with connection.cursor() as cursor:
        for model in (AuditEvent, Enrollment, CognitoIdentity):
            if model._meta.db_table in tables:
                cursor.execute(f"DELETE FROM {model._meta.db_table}")
    _migrate(LATEST)


@pytest.mark.django_db(transaction=True)
def test_migrations_forwards_keep_older_rows_and_back_to_zero(back_to_latest: None) -> None:
    user_model = get_user_model()
    alice = user_model.objects.create(username="alice")
    mallory = user_model.objects.create(username="mallory")
    now = timezone.now()
    _migrate(None)

    apps = _migrate("0001_initial")
    historical = apps.get_model(APP, "Enrollment")
    claim = historical.objects.create(  # 0001 named the claimed user from the start
        user_id=alice.pk, cognito_username="alice", flow="challenge", expires_at=now
    )
    proven = historical.objects.create(
        user_id=alice.pk,
        cognito_username="alice",
        flow="challenge",
        status="verified",
        expires_at=now,
        finished_at=now,
    )
    apps.get_model(APP, "AuditEvent").objects.create(
        enrollment_id=claim.pk, user_id=alice.pk, kind="started", source="challenge"
    )

    apps = _migrate("0002_one_pending_per_proven_user")
    historical = apps.get_model(APP, "Enrollment")
    own = historical.objects.create(  # allowed from 0002: beside a pending sign-in claim
        user_id=alice.pk, cognito_username="alice", flow="access_token", expires_at=now
    )
    historical.objects.create(
        user_id=mallory.pk, cognito_username="mallory", flow="access_token", expires_at=now
    )

    _migrate("0003_enrollment_user_proven_by_tokens")
    _migrate("0004_unproven_challenge_claims_name_nobody")
    _migrate(LATEST)
    # No binding is written by the migration: users are bound on their next request.
    assert not CognitoIdentity.objects.exists()
    assert Enrollment.objects.get(pk=claim.pk).user_id is None
    assert Enrollment.objects.get(pk=proven.pk).user_id == alice.pk
    assert Enrollment.objects.get(pk=own.pk).user_id == alice.pk
    assert AuditEvent.objects.get().enrollment_id == claim.pk

    # Back to 0001: alice holds two pending rows, which 0001's constraints forbid. The
    # migration says so and what to do, instead of failing on a unique index.
    with pytest.raises(RuntimeError, match=r"1 Cognito username.*cleanup_enrollments"):
        _migrate("0001_initial")
    assert Enrollment.objects.filter(status="pending").count() == 3
    Enrollment.objects.filter(pk=claim.pk).update(status="expired", finished_at=now)
    _migrate("0001_initial")
    _migrate(None)
