"""Key rotation: re-encrypt stored credentials, retire the old key, never a 500 on a lost key."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.core.checks import Tags, run_checks
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError
from django.utils import timezone
from rest_framework.test import APIClient

from cognito_mfa import checks, crypto, flows, rotation
from cognito_mfa.models import AuditEvent, Enrollment, EnrollmentFlow, EnrollmentStatus
from tests.support.cognito import Pool, count_cognito_calls, fresh_code
from tests.support.enrollments import start_enrollment
from tests.support.signals import SignalLog
from tests.support.threads import run_as_hosts

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()


def _rotate(*args: str) -> str:
    out = StringIO()
    call_command("rotate_encryption_keys", *args, stdout=out)
    return out.getvalue()


def _stored(enrollment_id: str) -> bytes:
    value = Enrollment.objects.get(pk=enrollment_id).encrypted_credential
    assert value is not None
    return bytes(value)


def _make_pending(count: int) -> list[Enrollment]:
    """Pending rows with credentials under the configured keys, one user each (no Cognito)."""
    user_model = get_user_model()
    now = timezone.now()
    rows = []
    for index in range(count):
        user = user_model.objects.create(username=f"rotation-{index}")
        rows.append(
            Enrollment.objects.create(
                user=user,
                cognito_username=user.username,
                flow=EnrollmentFlow.ACCESS_TOKEN,
                expires_at=now + timedelta(minutes=10),
                encrypted_credential=crypto.encrypt(f"credential-{index}"),
            )
        )
    return rows


# --- through the API, against moto ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_rotate_then_remove_the_old_key_and_pending_enrollments_still_verify(
    pool: Pool, alice_api: APIClient, settings: Any, signal_log: SignalLog
) -> None:
    settings.COGNITO_MFA_ENCRYPTION_KEYS = [OLD_KEY]
    started = start_enrollment(alice_api)
    before = _stored(started["id"])

    # Step 1 of the procedure: the new key first, the old one still listed to decrypt.
    settings.COGNITO_MFA_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    output = _rotate()
    assert "1 re-encrypted under the current key" in output
    assert "0 not decryptable" in output
    after = _stored(started["id"])
    assert after != before
    assert Fernet(NEW_KEY.encode()).decrypt(after) == Fernet(OLD_KEY.encode()).decrypt(before)

    # Idempotent: a second run finds nothing to do and writes nothing.
    output = _rotate()
    assert "0 re-encrypted" in output
    assert "1 already under the current key" in output
    assert _stored(started["id"]) == after

    # Step 2: the old key is gone; the pending enrollment verifies.
    settings.COGNITO_MFA_ENCRYPTION_KEYS = [NEW_KEY]
    assert not [e for e in run_checks(databases=["default"]) if e.id == "cognito_mfa.E008"]
    response = alice_api.post(
        f"/api/mfa/enrollments/{started['id']}/verify/",
        {"user_code": fresh_code()},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "verified"
    assert len(signal_log.named("software_token_verified")) == 1


@pytest.mark.django_db(transaction=True)
def test_a_sign_in_claim_survives_rotation_and_the_verify_still_proves_its_name(
    mfa_pool: Pool, settings: Any
) -> None:
    """A challenge row keeps its Session and the claimed name in one encrypted document: the
    rotation carries both, the check reads it, and the verify after the old key is gone still
    answers the challenge under the claimed name and writes it once the tokens prove it."""
    from tests.support.challenge import mfa_setup_session, start, verify

    settings.COGNITO_MFA_ENCRYPTION_KEYS = [OLD_KEY]
    api = APIClient()
    started = start(api, "tess", mfa_setup_session(mfa_pool, "tess")).json()
    before = _stored(started["id"])

    settings.COGNITO_MFA_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    assert "1 re-encrypted under the current key" in _rotate()
    settings.COGNITO_MFA_ENCRYPTION_KEYS = [NEW_KEY]
    assert _e008() == []
    row = Enrollment.objects.get(pk=started["id"])
    assert Fernet(NEW_KEY.encode()).decrypt(_stored(started["id"])) == Fernet(
        OLD_KEY.encode()
    ).decrypt(before)
    assert (
        flows.open_challenge_claim(row, crypto.decrypt(_stored(started["id"]))).cognito_username
        == "tess"
    )
    assert row.cognito_username == ""

    response = verify(api, started, fresh_code())
    assert response.status_code == 200, response.content
    assert response.json()["authentication_result"] is not None
    assert Enrollment.objects.get(pk=started["id"]).cognito_username == "tess"
    assert mfa_pool.mfa_state("tess")["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA"]


@pytest.mark.django_db(transaction=True)
def test_verify_with_an_undecryptable_credential_is_a_clean_502_and_changes_nothing(
    pool: Pool,
    alice_api: APIClient,
    settings: Any,
    signal_log: SignalLog,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.COGNITO_MFA_ENCRYPTION_KEYS = [OLD_KEY]
    started = start_enrollment(alice_api)
    row_before = Enrollment.objects.values().get(pk=started["id"])
    events_before = AuditEvent.objects.count()
    signal_log.events.clear()

    settings.COGNITO_MFA_ENCRYPTION_KEYS = [NEW_KEY]  # the old key removed too early
    with count_cognito_calls() as counter:
        response = alice_api.post(
            f"/api/mfa/enrollments/{started['id']}/verify/",
            {"user_code": fresh_code()},
            format="json",
        )
    assert response.status_code == 502, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "code": "cognito_error",
        "detail": "The MFA service refused the request. The site operator has been notified.",
    }
    assert counter.calls == []
    row_after = Enrollment.objects.values().get(pk=started["id"])
    row_before["encrypted_credential"] = bytes(row_before["encrypted_credential"])
    row_after["encrypted_credential"] = bytes(row_after["encrypted_credential"])
    assert row_after == row_before  # still pending, no attempt counted, lease released
    assert AuditEvent.objects.count() == events_before
    assert signal_log.events == []
    assert "cannot be decrypted" in caplog.text
    assert started["secret_code"] not in caplog.text

    # Putting the key back is all it takes: nothing was spent.
    settings.COGNITO_MFA_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    response = alice_api.post(
        f"/api/mfa/enrollments/{started['id']}/verify/",
        {"user_code": fresh_code()},
        format="json",
    )
    assert response.status_code == 200, response.content


# --- the command --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_dry_run_counts_and_writes_nothing(settings: Any) -> None:
    settings.COGNITO_MFA_ENCRYPTION_KEYS = [OLD_KEY]
    rows = _make_pending(3)
    before = {row.pk: _stored(str(row.pk)) for row in rows}
    settings.COGNITO_MFA_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    assert "3 would be re-encrypted" in _rotate("--dry-run")
    assert {row.pk: _stored(str(row.pk)) for row in rows} == before


@pytest.mark.django_db
def test_batches_cover_every_row_and_finished_rows_are_left_alone(settings: Any) -> None:
    settings.COGNITO_MFA_ENCRYPTION_KEYS = [OLD_KEY]
    rows = _make_pending(7)
    Enrollment.objects.filter(pk=rows[0].pk).update(
        status=EnrollmentStatus.CANCELLED, encrypted_credential=None
    )
    settings.COGNITO_MFA_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    output = _rotate("--batch-size", "2")
    assert "6 re-encrypted" in output
    settings.COGNITO_MFA_ENCRYPTION_KEYS = [NEW_KEY]
    for row in rows[1:]:
        assert crypto.decrypt(_stored(str(row.pk))).startswith("credential-")
    assert Enrollment.objects.get(pk=rows[0].pk).encrypted_credential is None


@pytest.mark.django_db
def test_undecryptable_rows_are_counted_kept_and_fail_the_command(settings: Any) -> None:
    settings.COGNITO_MFA_ENCRYPTION_KEYS = [OLD_KEY]
    stranded = _make_pending(1)[0]
    settings.COGNITO_MFA_ENCRYPTION_KEYS = [NEW_KEY]
    out = StringIO()
    with pytest.raises(CommandError, match="1 stored credential"):
        call_command("rotate_encryption_keys", stdout=out)
    assert "1 not decryptable with any configured key" in out.getvalue()
    # Kept as it was: the key may yet come back.
    settings.COGNITO_MFA_ENCRYPTION_KEYS = [OLD_KEY]
    assert crypto.decrypt(_stored(str(stranded.pk))) == "credential-0"


@pytest.mark.django_db
def test_unusable_keys_stop_the_command_before_any_write(settings: Any) -> None:
    settings.COGNITO_MFA_ENCRYPTION_KEYS = []
    with pytest.raises(CommandError, match="not usable"):
        _rotate()
    settings.COGNITO_MFA_ENCRYPTION_KEYS = ["not-a-fernet-key"]
    with pytest.raises(CommandError, match="not usable"):
        _rotate()


@pytest.mark.django_db
def test_compare_and_set_never_overwrites_a_concurrent_write(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.COGNITO_MFA_ENCRYPTION_KEYS = [OLD_KEY]
    raced, finished = _make_pending(2)
    settings.COGNITO_MFA_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    theirs = crypto.encrypt("credential-0")  # another run's ciphertext, under the new key
    real_rotate = crypto.rotate

    def rotate_while_others_write(ciphertext: bytes | memoryview) -> bytes:
        # Between our read and our write: another run rotates one row, a verify finishes the
        # other (its credential dropped).
        Enrollment.objects.filter(pk=raced.pk).update(encrypted_credential=theirs)
        Enrollment.objects.filter(pk=finished.pk).update(
            status=EnrollmentStatus.VERIFIED, encrypted_credential=None
        )
        return real_rotate(ciphertext)

    monkeypatch.setattr(rotation.crypto, "rotate", rotate_while_others_write)
    report = rotation.rotate_stored_credentials()
    assert (report.rotated, report.changed) == (0, 2)
    assert _stored(str(raced.pk)) == theirs
    assert Enrollment.objects.get(pk=finished.pk).encrypted_credential is None


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_rotate_each_row_exactly_once(settings: Any) -> None:
    settings.COGNITO_MFA_ENCRYPTION_KEYS = [OLD_KEY]
    rows = _make_pending(60)
    settings.COGNITO_MFA_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    reports = run_as_hosts(2, lambda: rotation.rotate_stored_credentials(batch_size=5))
    assert len(reports) == 2
    assert sum(report.rotated for report in reports) == len(rows)
    assert sum(report.undecryptable for report in reports) == 0
    settings.COGNITO_MFA_ENCRYPTION_KEYS = [NEW_KEY]
    for index, row in enumerate(rows):
        assert crypto.decrypt(_stored(str(row.pk))) == f"credential-{index}"


# --- the system check ---------------------------------------------------------------------------


def _e008(databases: list[str] | None = ("default",)) -> list[Any]:  # type: ignore[assignment]
    found = checks.check_stored_credentials(databases=databases)
    return [message for message in found if message.id == "cognito_mfa.E008"]


@pytest.mark.django_db
def test_check_reports_credentials_no_configured_key_decrypts(settings: Any) -> None:
    settings.COGNITO_MFA_ENCRYPTION_KEYS = [OLD_KEY]
    _make_pending(3)
    assert _e008() == []
    settings.COGNITO_MFA_ENCRYPTION_KEYS = [NEW_KEY]  # a wrong key, or the old one dropped
    (error,) = _e008()
    assert "3 of 3 sampled pending enrollments" in error.msg
    assert "rotate_encryption_keys" in error.hint
    settings.COGNITO_MFA_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    assert _e008() == []


@pytest.mark.django_db
def test_check_is_registered_under_the_database_tag(settings: Any) -> None:
    settings.COGNITO_MFA_ENCRYPTION_KEYS = [OLD_KEY]
    _make_pending(1)
    settings.COGNITO_MFA_ENCRYPTION_KEYS = [NEW_KEY]
    found = run_checks(tags=[Tags.database], databases=["default"])
    assert [message.id for message in found] == ["cognito_mfa.E008"]
    with pytest.raises(SystemCheckError, match=r"cognito_mfa\.E008"):
        call_command("check", "--database", "default", stdout=StringIO(), stderr=StringIO())


@pytest.mark.django_db
def test_check_samples_a_bounded_number_of_rows(
    settings: Any, django_assert_max_num_queries: Any
) -> None:
    settings.COGNITO_MFA_ENCRYPTION_KEYS = [OLD_KEY]
    _make_pending(checks.CREDENTIAL_SAMPLE_SIZE * 3)
    settings.COGNITO_MFA_ENCRYPTION_KEYS = [NEW_KEY]
    with django_assert_max_num_queries(4):
        (error,) = _e008()
    sampled = 2 * checks.CREDENTIAL_SAMPLE_SIZE
    assert f"{sampled} of {sampled} sampled" in error.msg


def test_check_touches_no_database_unless_asked(settings: Any) -> None:
    # Without the database tag requested (plain `manage.py check`), no query at all: this
    # test has no database access, so a query would raise.
    settings.COGNITO_MFA_ENCRYPTION_KEYS = [NEW_KEY]
    assert _e008(databases=None) == []


@pytest.mark.django_db
def test_check_leaves_bad_keys_to_the_key_checks(settings: Any) -> None:
    settings.COGNITO_MFA_ENCRYPTION_KEYS = ["not-a-fernet-key"]
    assert _e008() == []
    ids = [message.id for message in run_checks()]
    assert "cognito_mfa.E005" in ids
