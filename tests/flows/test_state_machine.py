"""A Hypothesis state machine over the enrollment life cycle, with moto as Cognito.

Rules: start, verify with the right code, verify with a wrong one, admin verify, cancel,
expire (by the cleanup path, and by the clock running out). After every step the database,
the signals and a plain model of what should have happened must agree, and:

- exactly one ``software_token_verified`` per verified enrollment, none for any other;
- a terminal row never changes again;
- no terminal row keeps a credential (and every pending row has one);
- ``attempts`` never exceeds ``COGNITO_MFA_MAX_ATTEMPTS``;
- at most one pending enrollment per user.

The clock is frozen (time-machine) on the second second of a TOTP step and moved in whole
steps, so the right code is always right for moto too and no step waits for the next window.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth import get_user_model
from hypothesis import HealthCheck, event
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from cognito_mfa import exceptions as exc
from cognito_mfa import flows
from cognito_mfa.models import Enrollment, EnrollmentStatus
from cognito_mfa.tokens import validate_access_token
from tests.support.cognito import Pool, totp_code, wrong_code
from tests.support.signals import SignalLog
from tests.support.users import sign_in

pytestmark = pytest.mark.django_db(transaction=True)

CAP = 2  # small, so runs of 15 steps reach the lock often
TTL = timedelta(minutes=10)
TERMINAL = {status.value for status in EnrollmentStatus} - {EnrollmentStatus.PENDING.value}


@dataclass
class Expected:
    """What the model says one enrollment should look like."""

    status: str
    attempts: int
    expires_at: datetime


def _frozen_start() -> datetime:
    now = datetime.now(UTC).replace(microsecond=0)
    return now - timedelta(seconds=now.second % 30) + timedelta(seconds=1)


def test_enrollment_life_cycle_keeps_its_invariants(
    pool: Pool, settings: Any, signal_log: SignalLog
) -> None:
    settings.COGNITO_MFA_MAX_ATTEMPTS = CAP
    settings.COGNITO_MFA_ENROLLMENT_TTL = TTL
    # The per-user failure budget has its own tests; here it would only mask the cap.
    settings.COGNITO_MFA_FAILURE_BUDGET = 1_000_000
    settings.COGNITO_MFA_FAILURE_HARD_LIMIT = 1_000_000
    user_model = get_user_model()
    staff = user_model.objects.create(username="helpdesk", is_staff=True)
    numbers = itertools.count()

    class EnrollmentMachine(RuleBasedStateMachine):
        enrollments = Bundle("enrollments")

        def __init__(self) -> None:
            super().__init__()
            self.traveller = time_machine.travel(_frozen_start(), tick=False)
            self.clock = self.traveller.start()
            self.username = f"sm-user-{next(numbers)}"
            pool.create_user(self.username)
            self.user = user_model.objects.create(username=self.username)
            self.expected: dict[str, Expected] = {}
            self.frozen: dict[str, dict[str, Any]] = {}
            self.latest = ""

        def teardown(self) -> None:
            self.traveller.stop()

        # --- helpers ------------------------------------------------------------------------
        def _row(self, enrollment_id: str) -> Enrollment:
            return Enrollment.objects.get(pk=enrollment_id)

        def _pick(self, enrollment_id: str, latest: bool) -> str:
            # Half the time the newest enrollment (most often the pending one), so runs
            # reach the cap and the verified state instead of poking finished rows only.
            return self.latest if latest else enrollment_id

        def _blocked(self, model: Expected) -> type[exc.CognitoMFAError] | None:
            """The error a verify must raise now, or None if it may reach Cognito."""
            if model.status == EnrollmentStatus.LOCKED:
                return exc.EnrollmentLocked
            if model.status == EnrollmentStatus.EXPIRED:
                return exc.EnrollmentExpired
            if model.status != EnrollmentStatus.PENDING:
                return exc.EnrollmentNotPending
            if flows.now() >= model.expires_at:
                model.status = EnrollmentStatus.EXPIRED  # the verify expires it on the way
                return exc.EnrollmentExpired
            return None

        def _verify(self, enrollment_id: str, code: str, context: flows.Context) -> None:
            model = self.expected[enrollment_id]
            blocked = self._blocked(model)
            right = code == totp_code()
            outcome: exc.CognitoMFAError | None = None
            try:
                flows.verify_enrollment(
                    context, enrollment=self._row(enrollment_id), user_code=code
                )
            except exc.CognitoMFAError as error:
                outcome = error
            if isinstance(outcome, exc.InvalidCode):
                assert blocked is None, "a blocked verify reached Cognito"
                assert not right, "a right code was refused"
                model.attempts += 1
                if model.attempts >= CAP:
                    model.status = EnrollmentStatus.LOCKED
                assert outcome.attempts_remaining == CAP - model.attempts
                event("verify: invalid_code" + (" (locks)" if model.attempts >= CAP else ""))
            elif outcome is not None:
                assert blocked is not None, f"unexpected {outcome.code}"
                assert type(outcome) is blocked, (outcome.code, blocked.code)
                event(f"verify: {outcome.code}")
            else:
                assert blocked is None, "a blocked verify succeeded"
                assert right, "a wrong code was accepted"
                model.status = EnrollmentStatus.VERIFIED
                event(f"verify: verified ({context.source})")

        # --- rules --------------------------------------------------------------------------
        @initialize(target=enrollments)
        def first_start(self) -> str:
            return self.start()

        @rule(target=enrollments)
        def start(self) -> str:
            # A fresh sign-in each time: a recent auth_time may replace an existing TOTP.
            token = validate_access_token(sign_in(pool, self.username))
            started = flows.start_enrollment(
                flows.Context.build("api"), user=self.user, token=token
            )
            for model in self.expected.values():
                if model.status == EnrollmentStatus.PENDING:
                    model.status = EnrollmentStatus.CANCELLED  # superseded
            enrollment = started.enrollment
            self.latest = str(enrollment.id)
            self.expected[str(enrollment.id)] = Expected(
                EnrollmentStatus.PENDING, 0, enrollment.expires_at
            )
            return str(enrollment.id)

        @rule(enrollment_id=enrollments, latest=st.booleans())
        def verify_right_code(self, enrollment_id: str, latest: bool) -> None:
            enrollment_id = self._pick(enrollment_id, latest)
            self._verify(enrollment_id, totp_code(), flows.Context.build("api"))

        @rule(enrollment_id=enrollments, latest=st.booleans())
        def verify_wrong_code(self, enrollment_id: str, latest: bool) -> None:
            enrollment_id = self._pick(enrollment_id, latest)
            self._verify(enrollment_id, wrong_code(), flows.Context.build("api"))

        @rule(enrollment_id=enrollments, latest=st.booleans())
        def admin_verifies(self, enrollment_id: str, latest: bool) -> None:
            enrollment_id = self._pick(enrollment_id, latest)
            self._verify(enrollment_id, totp_code(), flows.Context.build("admin", None, staff))

        @rule(enrollment_id=enrollments, latest=st.booleans())
        def cancel(self, enrollment_id: str, latest: bool) -> None:
            enrollment_id = self._pick(enrollment_id, latest)
            model = self.expected[enrollment_id]
            try:
                flows.cancel_enrollment(self._row(enrollment_id), flows.Context.build("api"))
            except exc.EnrollmentNotPending:
                assert model.status != EnrollmentStatus.PENDING
                return
            assert model.status == EnrollmentStatus.PENDING
            model.status = EnrollmentStatus.CANCELLED

        @rule(enrollment_id=enrollments, latest=st.booleans())
        def expire(self, enrollment_id: str, latest: bool) -> None:
            enrollment_id = self._pick(enrollment_id, latest)
            model = self.expected[enrollment_id]
            changed = flows.expire_enrollment(
                self._row(enrollment_id), flows.Context.build("command")
            )
            assert changed == (model.status == EnrollmentStatus.PENDING)
            if changed:
                model.status = EnrollmentStatus.EXPIRED

        @rule()
        def time_runs_out(self) -> None:
            # Whole 30-s steps, so the frozen clock stays early in a TOTP window.
            self.clock.shift(TTL + timedelta(seconds=30))

        # --- invariants ---------------------------------------------------------------------
        @invariant()
        def database_matches_the_model(self) -> None:
            rows = {str(row.pk): row for row in Enrollment.objects.filter(user=self.user)}
            assert set(rows) == set(self.expected)
            for enrollment_id, row in rows.items():
                model = self.expected[enrollment_id]
                assert (row.status, row.attempts) == (model.status, model.attempts), enrollment_id
                assert row.attempts <= CAP
                if row.status == EnrollmentStatus.PENDING:
                    assert row.encrypted_credential is not None
                else:
                    assert row.encrypted_credential is None
                    assert row.verify_lease_until is None
            pending = [row for row in rows.values() if row.status == EnrollmentStatus.PENDING]
            assert len(pending) <= 1

        @invariant()
        def terminal_rows_never_change(self) -> None:
            fields = (
                "status",
                "attempts",
                "verified_at",
                "verified_by_id",
                "finished_at",
                "friendly_device_name",
                "encrypted_credential",
                "preference_pending",
            )
            for row in Enrollment.objects.filter(user=self.user, status__in=TERMINAL).values(
                "id", *fields
            ):
                key = str(row.pop("id"))
                first_seen = self.frozen.setdefault(key, row)
                assert row == first_seen, key

        @invariant()
        def signals_match_the_transitions(self) -> None:
            def count(name: str, enrollment_id: str) -> int:
                return sum(
                    1
                    for kwargs in signal_log.named(name)
                    if str(kwargs["enrollment"].pk) == enrollment_id
                )

            for enrollment_id, model in self.expected.items():
                verified = count("software_token_verified", enrollment_id)
                assert verified == (1 if model.status == EnrollmentStatus.VERIFIED else 0)
                assert count("verification_failed", enrollment_id) == model.attempts
                assert count("enrollment_started", enrollment_id) == 1
                for name, status in (
                    ("enrollment_locked", EnrollmentStatus.LOCKED),
                    ("enrollment_expired", EnrollmentStatus.EXPIRED),
                    ("enrollment_cancelled", EnrollmentStatus.CANCELLED),
                ):
                    assert count(name, enrollment_id) == (1 if model.status == status else 0)
            for kwargs in signal_log.named("software_token_verified"):
                if kwargs["user"] == self.user and kwargs["source"] == "admin":
                    assert kwargs["actor"] == staff

    run_state_machine_as_test(
        EnrollmentMachine,
        settings=hypothesis_settings(
            # Bounded (about 5 s here) and reproducible; enough to reach every state.
            max_examples=40,
            stateful_step_count=20,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
