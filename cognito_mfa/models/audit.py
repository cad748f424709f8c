"""The audit trail: what happened to an enrollment or a user's MFA."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .enrollment import Enrollment
from .fields import optional_user


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def delete_batch(self, pks: list[Any]) -> int:
        """Delete the rows ``pks`` of this queryset; return how many were deleted."""
        deleted, _ = self.filter(pk__in=pks).delete()
        return deleted


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
        Enrollment,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="events",
        verbose_name=_("enrollment"),
    )
    user = optional_user(_("user"))
    cognito_username = models.CharField(
        _("Cognito username"), max_length=128, blank=True, db_index=True
    )
    actor = optional_user(_("actor"))
    kind = models.CharField(_("kind"), max_length=32, choices=Kind.choices)
    source = models.CharField(_("source"), max_length=16)
    outcome = models.CharField(_("outcome"), max_length=32, default="ok")
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    detail = models.JSONField(_("detail"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)

    objects = AuditEventQuerySet.as_manager()

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
