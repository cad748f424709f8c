"""Enrollments and their audit trail. The TOTP secret is never stored here."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


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


class EnrollmentQuerySet(models.QuerySet["Enrollment"]):
    def pending(self) -> EnrollmentQuerySet:
        return self.filter(status=EnrollmentStatus.PENDING)

    def for_user(self, user: Any) -> EnrollmentQuerySet:
        return self.filter(user=user)

    def stale(self, now: Any) -> EnrollmentQuerySet:
        """Pending enrollments whose time is up."""
        return self.pending().filter(expires_at__lte=now)

    def expirable(self, now: Any) -> EnrollmentQuerySet:
        """Stale enrollments no verify holds: one holding the lease (its Cognito call is under
        way) finishes first."""
        return self.stale(now).filter(
            Q(verify_lease_until__isnull=True) | Q(verify_lease_until__lt=now)
        )

    def expire(self, now: Any) -> int:
        """Expire the expirable rows of this queryset (compare-and-set); return how many."""
        return self.expirable(now).update(
            status=EnrollmentStatus.EXPIRED,
            encrypted_credential=None,
            verify_lease_until=None,
            finished_at=now,
        )

    def purgeable(self, cutoff: Any) -> EnrollmentQuerySet:
        """Finished enrollments that ended before ``cutoff`` (rows finished before
        ``finished_at`` was recorded: created before it). Pending rows never are.

        Every such row was created before ``cutoff`` too (a row finishes after it starts), so
        the condition on ``created_at`` lets the walk over old rows use that column's index.
        """
        return self.filter(status__in=TERMINAL_STATUSES, created_at__lt=cutoff).filter(
            Q(finished_at__lt=cutoff) | Q(finished_at__isnull=True)
        )


class Enrollment(models.Model):
    """One attempt to register a software token (TOTP authenticator) for a Cognito user."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="cognito_mfa_enrollments",
        help_text=_(
            "Empty for a sign-in challenge until Cognito's tokens prove its username, and when "
            "that Cognito user has no site account."
        ),
    )
    cognito_username = models.CharField(_("Cognito username"), max_length=128, db_index=True)
    flow = models.CharField(max_length=16, choices=EnrollmentFlow.choices)
    status = models.CharField(
        max_length=16, choices=EnrollmentStatus.choices, default=EnrollmentStatus.PENDING
    )
    friendly_device_name = models.CharField(_("device name"), max_length=128, blank=True)
    attempts = models.PositiveSmallIntegerField(_("wrong codes"), default=0)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    verified_at = models.DateTimeField(null=True, blank=True)
    verified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    finished_at = models.DateTimeField(null=True, blank=True)
    # Fernet ciphertext of the access token (flow=access_token) or the challenge Session;
    # NULL on every terminal state.
    encrypted_credential = models.BinaryField(null=True, blank=True, editable=False)
    credential_expires_at = models.DateTimeField(null=True, blank=True)
    # SHA-256 of the challenge token (flow=challenge); the token itself is shown once.
    challenge_token_hash = models.CharField(max_length=64, blank=True, editable=False)
    # Set while one request talks to Cognito about this enrollment, so concurrent verifies
    # queue instead of spending the code twice; never a database lock.
    verify_lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    # Verified, but turning TOTP on in Cognito (SetUserMFAPreference) is still owed.
    preference_pending = models.BooleanField(default=False)

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
        return f"{self.cognito_username} ({self.get_status_display()})"

    @property
    def is_pending(self) -> bool:
        return self.status == EnrollmentStatus.PENDING

    def verify_in_flight(self, at: datetime) -> bool:
        """Tell whether a verify holds this row's lease at ``at`` (it may be calling Cognito)."""
        return self.verify_lease_until is not None and self.verify_lease_until > at


class AuditEvent(models.Model):
    """What happened to an enrollment or a user's MFA: who, what, when, from where, outcome."""

    class Kind(models.TextChoices):
        STARTED = "started", _("enrollment started")
        VERIFIED = "verified", _("device verified")
        VERIFICATION_FAILED = "verification_failed", _("verification failed")
        LOCKED = "locked", _("enrollment locked")
        EXPIRED = "expired", _("enrollment expired")
        CANCELLED = "cancelled", _("enrollment cancelled")
        PREFERENCE_CHANGED = "preference_changed", _("MFA preference changed")
        MFA_RESET = "mfa_reset", _("TOTP reset")
        STATE_REFRESHED = "state_refreshed", _("MFA state refreshed")
        CHALLENGE_COMPLETED = "challenge_completed", _("sign-in challenge completed")

    enrollment = models.ForeignKey(
        Enrollment, on_delete=models.SET_NULL, null=True, blank=True, related_name="events"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    cognito_username = models.CharField(max_length=128, blank=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    kind = models.CharField(max_length=32, choices=Kind.choices)
    source = models.CharField(max_length=16)
    outcome = models.CharField(max_length=32, default="ok")
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("MFA audit event")
        verbose_name_plural = _("MFA audit events")
        # The admin's filters, each serving a page newest first (the list on its own walks
        # ``created_at``'s index).
        indexes = [
            models.Index(fields=["kind", "created_at", "id"], name="cognito_mfa_evt_kind_new"),
            models.Index(fields=["source", "created_at", "id"], name="cognito_mfa_evt_source_new"),
            models.Index(
                fields=["outcome", "created_at", "id"], name="cognito_mfa_evt_outcome_new"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.outcome})"


class FailureCounter(models.Model):
    """Consecutive wrong codes of one Cognito user, across enrollments (abuse limit)."""

    cognito_username = models.CharField(max_length=128, primary_key=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    blocked_until = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("MFA failure counter")

    def __str__(self) -> str:
        return f"{self.cognito_username}: {self.consecutive_failures}"
