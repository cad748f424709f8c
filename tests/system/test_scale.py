"""Running the app for a large site: admin pages, cleanup, key rotation and migrations at scale."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import timedelta
from io import StringIO
from typing import Any
from urllib.parse import urlencode

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
from tests.support.admin import make_staff, run_action
from tests.support.threads import run_as_hosts

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


def _confirmation_page_queries(client: Client, action: str, rows: list[Enrollment]) -> int:
    run_action(client, action, [row.pk for row in rows])  # warm the process-wide caches
    with CaptureQueriesContext(connection) as captured:
        page = run_action(client, action, [row.pk for row in rows])
    assert page.status_code == 200, page.status_code
    assert rows[-1].cognito_username in page.content.decode()  # every selected row is listed
    return len(captured)


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["reset_totp", "cancel_enrollments"])
def test_an_actions_confirmation_page_makes_as_many_queries_for_30_rows_as_for_3(
    action: str,
) -> None:
    """The page lists every selected row; whether a row is the admin's own (which the reset
    skips) is told with the admin's Cognito username, looked up once per page."""
    client = Client()
    client.force_login(make_staff("desk"))
    rows = _add_rows(0, 30)
    if action == "cancel_enrollments":  # only a pending row is offered for cancelling
        Enrollment.objects.update(
            status="pending",
            expires_at=timezone.now() + timedelta(minutes=10),
            verified_at=None,
            verified_by=None,
            finished_at=None,
        )
    assert _confirmation_page_queries(client, action, rows[:3]) == _confirmation_page_queries(
        client, action, rows
    )


# The admin's pages: statements per page bounded at two sizes, whatever the filter, search
# or page; the larger size lists more rows than the paginator counts (on PostgreSQL it then
# asks the planner's estimate: one statement more, within the budget).
PAGE_BUDGET = {
    # session, user and its two permission lookups, the count (and the estimate past the
    # exact limit), the page's rows
    "list": 7,
    # a search first looks up the site accounts the term names
    "search": 8,
}
SMALL_EXACT_COUNT_LIMIT = 50


def _scale_pages() -> dict[str, tuple[str, str]]:
    enrollments = reverse("admin:cognito_mfa_enrollment_changelist")
    events = reverse("admin:cognito_mfa_auditevent_changelist")
    # What the date filter's "This month" links to.
    first = timezone.localtime().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    since = urlencode(
        {"created_at__gte": str(first), "created_at__lt": str(first + timedelta(days=32))}
    )
    return {
        "enrollments": ("list", enrollments),
        "enrollments page 2": ("list", f"{enrollments}?p=2"),
        "enrollments by status": ("list", f"{enrollments}?status__exact=verified"),
        "enrollments by flow": ("list", f"{enrollments}?flow__exact=access_token"),
        "enrollments this month": ("list", f"{enrollments}?{since}"),
        "enrollments searched": ("search", f"{enrollments}?q=user1"),
        "enrollments by e-mail": ("search", f"{enrollments}?q=user7@example.test"),
        "events": ("list", events),
        "events page 2": ("list", f"{events}?p=2"),
        "events by kind": ("list", f"{events}?kind__exact=verification_failed"),
        "events by source": ("list", f"{events}?source__exact=admin"),
        "events by outcome": ("list", f"{events}?outcome__exact=invalid_code"),
        "events this month": ("list", f"{events}?{since}"),
        "events searched": ("search", f"{events}?q=user2"),
    }


@pytest.mark.django_db
def test_admin_pages_stay_within_their_statement_budget_at_two_sizes(
    django_assert_max_num_queries: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cognito_mfa.admin import changelists

    monkeypatch.setattr(changelists, "EXACT_COUNT_LIMIT", SMALL_EXACT_COUNT_LIMIT)
    client = Client()
    client.force_login(make_staff("desk"))
    pages = _scale_pages()
    for rows in (10, 300):  # fewer rows than one page; more than the paginator counts
        _add_rows(Enrollment.objects.count(), rows)
        assert Enrollment.objects.count() == rows
        for name, (kind, url) in pages.items():
            client.get(url)  # warm the process-wide caches (content types) first
            with django_assert_max_num_queries(PAGE_BUDGET[kind]):
                response = client.get(url)
            assert response.status_code == 200, (name, rows)
            assert response.context["cl"].result_list, (name, rows)


@pytest.mark.django_db
def test_a_long_list_is_counted_up_to_the_limit_then_estimated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cognito_mfa.admin import changelists

    monkeypatch.setattr(changelists, "EXACT_COUNT_LIMIT", 20)
    _add_rows(0, 60)
    rows = Enrollment.objects.order_by("-created_at", "-id")
    assert changelists.EstimatingPaginator(rows.filter(cognito_username="user3"), 10).count == 1
    assert changelists.EstimatingPaginator(rows.none(), 10).count == 0
    with CaptureQueriesContext(connection) as captured:
        counted = changelists.EstimatingPaginator(rows, 10).count
    sql = [query["sql"] for query in captured.captured_queries]
    assert "LIMIT 21" in sql[0]  # never a count over the whole table
    if connection.vendor == "postgresql":
        # The planner's guess: never below what was counted, in the right order of size.
        assert 21 <= counted < 10_000
        assert sql[1].startswith("EXPLAIN")
        assert len(sql) == 2
    else:
        assert counted == 60


@pytest.mark.django_db
def test_admin_filters_list_fixed_choices_without_reading_the_table(admin_client: Client) -> None:
    _add_rows(0, 5)
    events = reverse("admin:cognito_mfa_auditevent_changelist")
    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get(events)
    assert response.status_code == 200
    sql = " ".join(query["sql"] for query in captured.captured_queries).upper()
    assert "DISTINCT" not in sql
    filters = {spec.title: spec for spec in response.context["cl"].filter_specs}
    sources = [choice["display"] for choice in filters["source"].choices(response.context["cl"])]
    assert [str(s) for s in sources] == [
        "All",
        "REST API",
        "sign-in challenge",
        "admin",
        "management command",
    ]
    outcomes = filters["outcome"].lookup_choices
    assert {"ok", "invalid_code", "enrollment_expired", "cognito_unavailable"} <= {
        value for value, _ in outcomes
    }
    # No facet counts on request either: they would count every choice over the table.
    with CaptureQueriesContext(connection) as captured:
        assert admin_client.get(f"{events}?_facets=True").status_code == 200
    assert all(
        "COUNT" not in q["sql"].upper() or "LIMIT" in q["sql"].upper()
        for q in captured.captured_queries
    )
    by_source = admin_client.get(events, {"source__exact": "admin"})
    assert len(by_source.context["cl"].result_list) == 15
    assert not admin_client.get(events, {"source__exact": "api"}).context["cl"].result_list


@pytest.mark.django_db
def test_admin_search_matches_the_start_of_usernames_and_whole_accounts(
    admin_client: Client,
) -> None:
    _add_rows(0, 30)
    enrollments = reverse("admin:cognito_mfa_enrollment_changelist")

    def found(term: str) -> set[str]:
        response = admin_client.get(enrollments, {"q": term})
        assert response.status_code == 200
        return {row.cognito_username for row in response.context["cl"].result_list}

    assert found("user2") == {"user2", *(f"user2{i}" for i in range(10))}
    assert found("ser2") == set()  # the start of a name, not any part of it: an index serves it
    assert found("USER2@example.test") == {"user2"}  # an e-mail address, whole
    assert found("example.test") == set()
    # A site username, whole, finds the rows of its account whatever their Cognito name.
    Enrollment.objects.filter(cognito_username="user5").update(cognito_username="cognito-5")
    assert found("user5") == {"cognito-5"}
    with CaptureQueriesContext(connection) as captured:
        admin_client.get(enrollments, {"q": "user2"})
    sql = " ".join(query["sql"] for query in captured.captured_queries)
    assert "LIKE 'user2%'" in sql  # a prefix, which the username's index answers
    assert all("%user2%" not in str(q) for q in captured.captured_queries)


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


# --- cleanup_enrollments: statements linear in the rows removed, each one short ---------------


def _stale(count: int, *, prefix: str = "stale") -> list[Any]:
    long_ago = timezone.now() - timedelta(hours=2)
    rows = Enrollment.objects.bulk_create(
        [
            Enrollment(
                cognito_username=f"{prefix}{index}",
                flow="challenge",
                created_at=long_ago,
                # Ties on expires_at: the keyset's primary key separates them.
                expires_at=long_ago + timedelta(minutes=index // 3),
                encrypted_credential=crypto.encrypt("credential"),
            )
            for index in range(count)
        ]
    )
    return [row.pk for row in rows]


def _statements(run: Callable[[], Any]) -> tuple[Any, int, int]:
    """Run; return its result, the statements it sent and the longest one's length."""
    with CaptureQueriesContext(connection) as captured:
        result = run()
    return result, len(captured), max((len(q["sql"]) for q in captured.captured_queries), default=0)


@pytest.mark.django_db
def test_expiring_twice_the_rows_takes_twice_the_batches_of_the_same_statements() -> None:
    context = flows.Context.build("command")

    def expire() -> int:
        return flows.expire_stale_enrollments(context, batch_size=10)

    none, empty, _ = _statements(expire)
    _stale(40, prefix="a")
    forty, small, small_longest = _statements(expire)
    _stale(80, prefix="b")
    eighty, large, large_longest = _statements(expire)
    assert (none, forty, eighty) == (0, 40, 80)
    # Each batch of 10 sends the same statements: 4 batches, then 8.
    assert large - empty == 2 * (small - empty)
    # No statement grows with the rows already handled (an exclusion list of their ids did).
    assert large_longest <= small_longest + 50
    assert Enrollment.objects.filter(status="expired", encrypted_credential=None).count() == 120
    assert AuditEvent.objects.filter(kind="expired", outcome="enrollment_expired").count() == 120


@pytest.mark.django_db
def test_purging_twice_the_rows_takes_twice_the_batches_of_the_same_statements(
    settings: Any,
) -> None:
    settings.COGNITO_MFA_RETENTION = timedelta(days=90)
    # Recent rows the walk must not read on every batch (nor at its end).
    _add_rows(0, 50)

    def purge() -> tuple[int, int]:
        return flows.purge_finished(batch_size=10)

    _, empty, _ = _statements(purge)
    _old_finished(40, prefix="a", events=True)
    AuditEvent.objects.filter(enrollment__cognito_username__startswith="a").update(
        created_at=timezone.now() - timedelta(days=200)
    )
    small_result, small, small_longest = _statements(purge)
    _old_finished(80, prefix="b", events=True)
    AuditEvent.objects.filter(enrollment__cognito_username__startswith="b").update(
        created_at=timezone.now() - timedelta(days=200)
    )
    large_result, large, large_longest = _statements(purge)
    assert (small_result, large_result) == ((40, 40), (80, 80))
    assert large - empty == 2 * (small - empty)
    assert large_longest <= small_longest + 50
    assert Enrollment.objects.count() == 50


@pytest.mark.django_db
def test_a_batch_another_process_changed_is_expired_row_by_row_exactly_once(
    signal_log: Any, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    from cognito_mfa.models import EnrollmentQuerySet

    ids = _stale(12)
    original = EnrollmentQuerySet.expire
    crossed: list[int] = []

    def expire_after_another_host(self: Any, now: Any) -> int:
        if not crossed:  # the first batch: another host expires one of its rows first
            crossed.append(original(Enrollment.objects.filter(pk=ids[0]), now))
        return original(self, now)

    monkeypatch.setattr(EnrollmentQuerySet, "expire", expire_after_another_host)
    with django_capture_on_commit_callbacks(execute=True):
        expired = flows.expire_stale_enrollments(flows.Context.build("command"), batch_size=5)
    assert crossed == [1]
    # The crossed batch rolled back as a whole (the other host's change with it, here) and
    # went row by row: every row expired once, audited once, announced once.
    assert expired == 12
    assert Enrollment.objects.filter(status="expired").count() == 12
    assert AuditEvent.objects.filter(kind="expired").count() == 12
    assert sorted(sent["enrollment"].pk for sent in signal_log.named("enrollment_expired")) == (
        sorted(ids)
    )


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_expiry_skips_a_row_a_start_holds_instead_of_waiting_for_it(signal_log: Any) -> None:
    import threading

    from django.db import connections, transaction

    ids = _stale(6)
    held, release = threading.Event(), threading.Event()

    def start_holding_the_row() -> None:
        try:
            with transaction.atomic():
                # What a start does with the user's pending rows: lock them until it commits.
                list(Enrollment.objects.select_for_update().filter(pk=ids[2]))
                held.set()
                release.wait(timeout=30)
        finally:
            connections.close_all()

    holder = threading.Thread(target=start_holding_the_row)
    holder.start()
    try:
        assert held.wait(timeout=10)
        began = time.monotonic()
        expired = flows.expire_stale_enrollments(flows.Context.build("command"), batch_size=4)
        took = time.monotonic() - began
    finally:
        release.set()
        holder.join(timeout=30)
    assert expired == 5
    assert took < 5  # never waited for the lock the start held
    assert Enrollment.objects.get(pk=ids[2]).status == "pending"
    # The next run expires it.
    assert flows.expire_stale_enrollments(flows.Context.build("command")) == 1
    assert len(signal_log.named("enrollment_expired")) == 6


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
LATEST = "0007_field_labels_for_translation"


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
    if connection.vendor == "postgresql":
        # An earlier run of 0006 (not atomic, so not recorded) stopped after its first index.
        with connection.cursor() as cursor:
            cursor.execute(
                'CREATE INDEX "cognito_mfa_enr_created" ON "cognito_mfa_enrollment" '
                '("created_at", "id")'
            )
    _migrate(LATEST)  # concurrent index builds on PostgreSQL, outside a transaction
    # No binding is written by the migration: users are bound on their next request.
    assert not CognitoIdentity.objects.exists()
    with connection.cursor() as cursor:
        built = set(
            connection.introspection.get_constraints(cursor, Enrollment._meta.db_table)
        ) | set(connection.introspection.get_constraints(cursor, AuditEvent._meta.db_table))
    assert {
        "cognito_mfa_enr_created",
        "cognito_mfa_enr_status_new",
        "cognito_mfa_enr_flow_new",
        "cognito_mfa_enr_owed",
        "cognito_mfa_evt_kind_new",
        "cognito_mfa_evt_source_new",
        "cognito_mfa_evt_outcome_new",
    } <= built
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
