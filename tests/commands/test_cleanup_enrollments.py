"""``cleanup_enrollments``: expiry, purge, owed preferences, the retention setting."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.utils import timezone

from cognito_mfa import crypto, flows
from cognito_mfa.models import AuditEvent, Enrollment
from tests.support.cognito import Pool, fresh_code
from tests.support.signals import SignalLog
from tests.support.threads import run_as_hosts


def _pending(username: str, *, created: Any, ttl: timedelta = timedelta(minutes=10)) -> Enrollment:
    return Enrollment.objects.create(
        cognito_username=username,
        flow="access_token",
        created_at=created,
        expires_at=created + ttl,
        credential_expires_at=created + timedelta(hours=1),
        encrypted_credential=crypto.encrypt(f"token-of-{username}"),
    )


def _cleanup() -> str:
    out = io.StringIO()
    call_command("cleanup_enrollments", stdout=out)
    return out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_cleanup_expires_stale_rows_once(signal_log: SignalLog) -> None:
    start = timezone.now().replace(microsecond=0)
    stale = _pending("stale", created=start)
    fresh = _pending("fresh", created=start + timedelta(minutes=8))
    with time_machine.travel(start + timedelta(minutes=11), tick=False):
        printed = _cleanup()
        assert "Expired 1 pending enrollment(s)." in printed
        stale.refresh_from_db()
        assert stale.status == "expired"
        assert stale.encrypted_credential is None
        assert stale.finished_at == start + timedelta(minutes=11)
        fresh.refresh_from_db()
        assert fresh.status == "pending"
        assert fresh.encrypted_credential is not None
        (sent,) = signal_log.named("enrollment_expired")
        assert sent["enrollment"].pk == stale.pk
        assert sent["source"] == "command"
        assert sent["request"] is None
        event = AuditEvent.objects.get(kind="expired")
        assert (event.source, event.cognito_username) == ("command", "stale")

        # A second run changes nothing.
        assert "Expired 0 pending enrollment(s)." in _cleanup()
        assert len(signal_log.named("enrollment_expired")) == 1
        assert AuditEvent.objects.filter(kind="expired").count() == 1


@pytest.mark.django_db
def test_cleanup_purges_old_terminal_rows_and_events(settings: Any) -> None:
    settings.COGNITO_MFA_RETENTION = timedelta(days=90)
    now = timezone.now()
    old_start = now - timedelta(days=120)
    old = Enrollment.objects.create(
        cognito_username="old",
        flow="access_token",
        status="verified",
        created_at=old_start,
        expires_at=old_start + timedelta(minutes=10),
        finished_at=now - timedelta(days=91),
    )
    recent = Enrollment.objects.create(
        cognito_username="recent",
        flow="access_token",
        status="cancelled",
        created_at=now - timedelta(days=100),
        expires_at=now - timedelta(days=100),
        finished_at=now - timedelta(days=89),
    )
    AuditEvent.objects.create(
        enrollment=old, kind="verified", source="api", created_at=now - timedelta(days=91)
    )
    kept_event = AuditEvent.objects.create(
        enrollment=recent, kind="cancelled", source="api", created_at=now - timedelta(days=1)
    )
    printed = _cleanup()
    assert "Deleted 1 finished enrollment(s) and 1 audit event(s) older than 90 day(s)." in printed
    assert list(Enrollment.objects.values_list("cognito_username", flat=True)) == ["recent"]
    assert list(AuditEvent.objects.values_list("pk", flat=True)) == [kept_event.pk]
    assert "Deleted 0 finished enrollment(s) and 0 audit event(s)" in _cleanup()


@pytest.mark.django_db
def test_cleanup_completes_owed_preferences(pool: Pool) -> None:
    pool.create_user("pat")
    token = pool.access_token("pat")
    pool.client.associate_software_token(AccessToken=token)
    pool.client.verify_software_token(AccessToken=token, UserCode=fresh_code())
    now = timezone.now()
    owed = Enrollment.objects.create(
        cognito_username="pat",
        flow="access_token",
        status="verified",
        expires_at=now,
        verified_at=now,
        finished_at=now,
        preference_pending=True,
    )
    printed = _cleanup()
    assert "Completed 1 owed MFA preference(s); 0 failed." in printed
    owed.refresh_from_db()
    assert owed.preference_pending is False
    assert pool.mfa_state("pat")["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA"]

    # A user Cognito does not know: reported, kept for the next run, non-zero exit for cron.
    Enrollment.objects.create(
        cognito_username="nobody",
        flow="access_token",
        status="verified",
        expires_at=now,
        finished_at=now,
        preference_pending=True,
    )
    with pytest.raises(CommandError) as failure:
        _cleanup()
    assert failure.value.returncode == 2
    assert Enrollment.objects.get(cognito_username="nobody").preference_pending is True


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_cleanup_on_several_hosts_expires_each_row_once(signal_log: SignalLog) -> None:
    start = timezone.now() - timedelta(hours=1)
    rows = [_pending(f"user{index}", created=start) for index in range(40)]
    counts = run_as_hosts(4, lambda: flows.expire_stale_enrollments(flows.Context.build("command")))
    assert sum(counts) == len(rows)
    assert Enrollment.objects.filter(status="expired", encrypted_credential=None).count() == 40
    assert len(signal_log.named("enrollment_expired")) == 40
    assert AuditEvent.objects.filter(kind="expired").count() == 40


# --- an unusable COGNITO_MFA_RETENTION --------------------------------


@pytest.mark.parametrize("retention", ["90 days", None, timedelta(0), -86400, 1e300])
@pytest.mark.django_db
def test_cleanup_refuses_a_bad_retention_before_changing_anything(
    settings: Any, retention: Any
) -> None:
    settings.COGNITO_MFA_RETENTION = retention
    stale = _pending("stale", created=timezone.now() - timedelta(hours=1))
    now = timezone.now()
    finished = Enrollment.objects.create(
        cognito_username="finished",
        flow="access_token",
        status="verified",
        created_at=now - timedelta(minutes=5),
        expires_at=now + timedelta(minutes=5),
        finished_at=now - timedelta(minutes=1),
    )
    with pytest.raises(CommandError) as raised:
        _cleanup()  # call_command skips the system checks: the command checks itself
    message = str(raised.value)
    assert message.startswith("COGNITO_MFA_RETENTION ")
    assert "timedelta(days=90)" in message
    stale.refresh_from_db()
    assert stale.status == "pending"  # nothing expired either
    assert Enrollment.objects.filter(pk=finished.pk).exists()


@pytest.mark.django_db
def test_cleanup_run_as_manage_py_stops_at_the_system_check(settings: Any) -> None:
    from django.core.management.base import SystemCheckError

    settings.COGNITO_MFA_RETENTION = "90 days"
    # What `manage.py cleanup_enrollments` does: checks first, unless --skip-checks.
    with pytest.raises(SystemCheckError, match=r"cognito_mfa\.E006.*COGNITO_MFA_RETENTION"):
        call_command("cleanup_enrollments", skip_checks=False, stdout=io.StringIO())


def test_cleanup_accepts_retention_in_seconds(settings: Any, db: Any) -> None:
    settings.COGNITO_MFA_RETENTION = "604800"
    assert "older than 7 day(s)." in _cleanup()
