"""Enrollments: the model, its states, and every row change the flows make on it.

The TOTP secret is never stored here.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connections, models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .fields import optional_user


class EnrollmentStatus(models.TextChoices):
    PENDING = "pending", _("pending")
    VERIFIED = "verified", _("verified")
    LOCKED = "locked", _("locked")
    EXPIRED = "expired", _("expired")
    CANCELLED = "cancelled", _("cancelled")


TERMINAL_STATUSES = (
    EnrollmentStatus.VERIFIED,
    EnrollmentStatus.LOCKED,
    EnrollmentStatus.EXPIRED,
    EnrollmentStatus.CANCELLED,
)


class EnrollmentFlow(models.TextChoices):
    ACCESS_TOKEN = "access_token", _("access token")
    CHALLENGE = "challenge", _("sign-in challenge")


def _ended_row(status: str, at: datetime) -> dict[str, Any]:
    """The columns a pending row's move to a terminal ``status`` writes: the credential and
    the lease go with it."""
    return {
        "status": status,
        "encrypted_credential": None,
        "verify_lease_until": None,
        "finished_at": at,
    }


def lease_free(at: datetime) -> Q:
    """The rows whose verify lease is free at ``at``: never taken, or run out before ``at``.

    The one definition of the rule; :meth:`Enrollment.verify_in_flight` is its negation for
    a row in hand.
    """
    return Q(verify_lease_until__isnull=True) | Q(verify_lease_until__lt=at)


class EnrollmentQuerySet(models.QuerySet["Enrollment"]):
    """Every read and row change of enrollments the flows make, each a compare-and-set where
    two requests could race (its row count says who won)."""

    def pending(self) -> EnrollmentQuerySet:
        return self.filter(status=EnrollmentStatus.PENDING)

    def for_user(self, user: Any) -> EnrollmentQuerySet:
        return self.filter(user=user)

    def stale(self, now: Any) -> EnrollmentQuerySet:
        """Pending enrollments whose time is up."""
        return self.pending().filter(expires_at__lte=now)

    def lease_free(self, at: datetime) -> EnrollmentQuerySet:
        return self.filter(lease_free(at))

    def owed_preferences(self) -> EnrollmentQuerySet:
        """Verified enrollments whose "turn TOTP on" (``SetUserMFAPreference``) is still owed."""
        return self.filter(status=EnrollmentStatus.VERIFIED, preference_pending=True)

    def unique(self) -> Enrollment | None:
        """Return the one row a lookup on a unique key finds, or None.

        Not ``first()``: that orders by the model's ordering before ``LIMIT 1``, which a
        unique key makes pointless.
        """
        return next(iter(self.order_by()[:1]), None)

    def owned(self, enrollment_id: Any, user: Any) -> Enrollment | None:
        """Return the enrollment ``enrollment_id`` if it belongs to ``user``, else None."""
        return self.filter(pk=enrollment_id, user=user).unique()

    def lock_pending_to_replace(self, user: Any, cognito_username: str) -> list[Enrollment]:
        """Lock and return the pending enrollments of a user, by site account or Cognito name.

        Runs inside the caller's transaction (``select_for_update``; SQLite, which locks the
        whole database for a writer, has no row locks and reads them plainly).
        """
        rows = self.pending().filter(Q(cognito_username=cognito_username) | Q(user=user))
        return list(rows.select_for_update())

    def claim_verify_lease(
        self, enrollment_id: Any, *, lease: datetime, at: datetime, max_attempts: int
    ) -> bool:
        """Set the verify lease of a pending, unexpired, unlocked enrollment whose lease is
        free at ``at``. Return whether this caller got it (compare-and-set)."""
        # One filter() call: the verify's hot path pays for each QuerySet clone.
        claimable = self.filter(
            lease_free(at),
            pk=enrollment_id,
            status=EnrollmentStatus.PENDING,
            expires_at__gt=at,
            attempts__lt=max_attempts,
        )
        return claimable.update(verify_lease_until=lease) == 1

    def release_verify_lease(self, enrollment_id: Any, lease: datetime) -> None:
        """Give up a verify lease this caller holds (a later lease is someone else's)."""
        self.filter(pk=enrollment_id, verify_lease_until=lease).update(verify_lease_until=None)

    def end_pending(
        self, enrollment_id: Any, status: str, at: datetime, *, only_if: Q | None = None
    ) -> bool:
        """Move a pending row to the terminal ``status``, dropping its credential and lease.

        Return False, changing nothing, if it was no longer pending or ``only_if`` did not
        hold: another request got there first.
        """
        rows = self.filter(only_if or Q(), pk=enrollment_id, status=EnrollmentStatus.PENDING)
        return rows.update(**_ended_row(status, at)) == 1

    def mark_verified(
        self,
        enrollment_id: Any,
        *,
        lease: datetime,
        at: datetime,
        verified_by: Any,
        device_name: str,
        preference_pending: bool,
        user: Any = None,
        cognito_username: str | None = None,
    ) -> bool:
        """Move a pending row whose lease is ``lease`` to verified, dropping its credential,
        and give it ``user`` and ``cognito_username`` when they are given (a sign-in claim the
        tokens proved). Return False, changing nothing, if the row ended or the lease is not
        ours."""
        changes: dict[str, Any] = {
            "status": EnrollmentStatus.VERIFIED,
            "verified_at": at,
            "verified_by": verified_by,
            "finished_at": at,
            "friendly_device_name": device_name,
            "encrypted_credential": None,
            "verify_lease_until": None,
            "preference_pending": preference_pending,
        }
        if user is not None:
            changes["user"] = user
        if cognito_username is not None:
            changes["cognito_username"] = cognito_username
        rows = self.filter(
            pk=enrollment_id, status=EnrollmentStatus.PENDING, verify_lease_until=lease
        )
        return rows.update(**changes) == 1

    def record_wrong_code(
        self, enrollment_id: Any, *, lease: datetime, at: datetime, max_attempts: int
    ) -> tuple[Enrollment, bool]:
        """Count a wrong code on the row whose lease is ``lease`` and lock it at the cap.

        Runs inside the caller's transaction, the row locked until it ends. Return the row
        as it now is and whether it was ours to change (pending, our lease); a row that is
        not ours is returned unchanged.
        """
        row = self.select_for_update().get(pk=enrollment_id)
        if row.status != EnrollmentStatus.PENDING or row.verify_lease_until != lease:
            return row, False
        row.attempts += 1
        row.verify_lease_until = None
        fields = ["attempts", "verify_lease_until"]
        if row.attempts >= max_attempts:
            row.status, row.encrypted_credential, row.finished_at = (
                EnrollmentStatus.LOCKED,
                None,
                at,
            )
            fields += ["status", "encrypted_credential", "finished_at"]
        row.save(update_fields=fields)
        return row, True

    def settle_owed_preference(self, enrollment_id: Any) -> bool:
        """Mark the owed "turn TOTP on" of a verified row as done. Return False if nothing
        was owed any more (another process settled or forgave it first)."""
        owed = self.owed_preferences().filter(pk=enrollment_id)
        return owed.update(preference_pending=False) == 1

    def forgive_owed_preferences(self, cognito_username: str) -> None:
        """Drop every still-owed "turn TOTP on" of a Cognito user."""
        self.owed_preferences().filter(cognito_username=cognito_username).update(
            preference_pending=False
        )

    def expirable(self, now: Any) -> EnrollmentQuerySet:
        """Stale enrollments no verify holds: one holding the lease (its Cognito call is under
        way) finishes first."""
        return self.stale(now).filter(lease_free(now))

    def expire(self, now: Any) -> int:
        """Expire the expirable rows of this queryset (compare-and-set); return how many."""
        return self.expirable(now).update(**_ended_row(EnrollmentStatus.EXPIRED, now))

    def purgeable(self, cutoff: Any) -> EnrollmentQuerySet:
        """Finished enrollments that ended before ``cutoff`` (rows finished before
        ``finished_at`` was recorded: created before it). Pending rows never are.

        Every such row was created before ``cutoff`` too (a row finishes after it starts), so
        the condition on ``created_at`` lets the walk over old rows use that column's index.
        """
        return self.filter(status__in=TERMINAL_STATUSES, created_at__lt=cutoff).filter(
            Q(finished_at__lt=cutoff) | Q(finished_at__isnull=True)
        )

    def delete_batch(self, pks: list[Any]) -> int:
        """Delete the rows ``pks`` of this queryset (those still in it); return how many
        enrollments went (their audit events stay, unlinked)."""
        _, per_model = self.filter(pk__in=pks).delete()
        return per_model.get(Enrollment._meta.label, 0)


def lock_user_row(user: Any) -> None:
    """Lock the user's row until the caller's transaction ends (serialises their starts).

    The base manager, not the default one: a host's default manager may hide the row
    (soft deletion), which must not make the lock silently take nothing.
    """
    model = user._meta.model  # a session user arrives wrapped in a SimpleLazyObject
    locking = model._base_manager.select_for_update().filter(pk=user.pk)
    # SQLite has no row locks (its writer holds the whole database until commit) and the ORM
    # drops FOR UPDATE there: the read would lock nothing, so it is not sent.
    if connections[locking.db].vendor == "sqlite":
        return
    list(locking.values_list("pk"))


class Enrollment(models.Model):
    """One attempt to register a software token (TOTP authenticator) for a Cognito user."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="cognito_mfa_enrollments",
        verbose_name=_("user"),
        help_text=_(
            "Empty for a sign-in challenge until Cognito's tokens prove its username, and when "
            "that Cognito user has no site account."
        ),
    )
    # Blank for a sign-in challenge until Cognito's tokens prove the claimed name (the claim is
    # kept inside the encrypted credential only).
    cognito_username = models.CharField(_("Cognito username"), max_length=128, db_index=True)
    flow = models.CharField(_("flow"), max_length=16, choices=EnrollmentFlow.choices)
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=EnrollmentStatus.choices,
        default=EnrollmentStatus.PENDING,
    )
    friendly_device_name = models.CharField(_("device name"), max_length=128, blank=True)
    attempts = models.PositiveSmallIntegerField(_("wrong codes"), default=0)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires at"))
    verified_at = models.DateTimeField(_("verified at"), null=True, blank=True)
    verified_by = optional_user(_("verified by"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    # Fernet ciphertext of the access token (flow=access_token) or the challenge Session;
    # NULL on every terminal state.
    encrypted_credential = models.BinaryField(null=True, blank=True, editable=False)
    credential_expires_at = models.DateTimeField(_("credential expires at"), null=True, blank=True)
    # SHA-256 of the challenge token (flow=challenge); the token itself is shown once.
    challenge_token_hash = models.CharField(max_length=64, blank=True, editable=False)
    # Set while one request talks to Cognito about this enrollment, so concurrent verifies
    # queue instead of spending the code twice; never a database lock.
    verify_lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    # Verified, but turning TOTP on in Cognito (SetUserMFAPreference) is still owed.
    preference_pending = models.BooleanField(_("preference pending"), default=False)

    objects = EnrollmentQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("MFA enrollment")
        verbose_name_plural = _("MFA enrollments")
        permissions = [("verify_enrollment", _("Can verify an enrollment with a user's code"))]
        constraints = [
            # One pending enrollment per proven user. Sign-in challenge rows are left out: the
            # username they carry is a claim until Cognito hands out tokens, and a claim must
            # not displace (or be blocked by) the real user's enrollment.
            models.UniqueConstraint(
                fields=["user"],
                condition=Q(status="pending", flow="access_token"),
                name="cognito_mfa_one_pending_per_user",
            ),
            models.UniqueConstraint(
                fields=["cognito_username"],
                condition=Q(status="pending", flow="access_token"),
                name="cognito_mfa_one_pending_per_cognito_user",
            ),
            models.CheckConstraint(
                condition=Q(status="pending") | Q(encrypted_credential__isnull=True),
                name="cognito_mfa_no_credential_when_finished",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "expires_at"], name="cognito_mfa_status_exp"),
            # The admin's list, newest first (the primary key breaks ties), on its own and
            # filtered by status or flow: a page reads its rows from the index, whatever the
            # table's size. The cleanup walks the first one to purge old rows.
            models.Index(fields=["created_at", "id"], name="cognito_mfa_enr_created"),
            models.Index(fields=["status", "created_at", "id"], name="cognito_mfa_enr_status_new"),
            models.Index(fields=["flow", "created_at", "id"], name="cognito_mfa_enr_flow_new"),
            # The few verified rows still owing SetUserMFAPreference, found by the cleanup
            # without reading the others.
            models.Index(
                fields=["created_at"],
                condition=Q(preference_pending=True),
                name="cognito_mfa_enr_owed",
            ),
        ]

    def __str__(self) -> str:
        name = self.cognito_username or _("unproven sign-in claim")
        return f"{name} ({self.get_status_display()})"

    @property
    def is_unproven_claim(self) -> bool:
        """A sign-in challenge whose claimed username no tokens proved (yet): it names nobody,
        the claim being kept only inside the encrypted credential."""
        return self.flow == EnrollmentFlow.CHALLENGE and not self.cognito_username

    @property
    def is_pending(self) -> bool:
        return self.status == EnrollmentStatus.PENDING

    def verify_in_flight(self, at: datetime) -> bool:
        """Tell whether a verify holds this row's lease at ``at`` (it may be calling Cognito)."""
        # Not lease_free(at): a lease ending exactly at ``at`` is neither (as before).
        return self.verify_lease_until is not None and self.verify_lease_until > at
