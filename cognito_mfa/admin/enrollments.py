"""The enrollment admin: the list a help desk searches, the read-only change page, and the
permissions of each act on a row (the acts themselves are in :mod:`.actions` and :mod:`.verify`).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ..models import Enrollment
from .actions import cancel_enrollments, refresh_mfa_state, reset_totp, verify_device
from .audit import AuditEventInline
from .changelists import ScalableChangelistAdmin
from .verify import VerifyDeviceAdmin


class EnrollmentAdmin(VerifyDeviceAdmin, ScalableChangelistAdmin):
    """Enrollments, read-only except through the actions and the verify page."""

    list_display = (
        "cognito_user",
        "user",
        "flow",
        "status",
        "friendly_device_name",
        "attempts",
        "created_at",
        "expires_at",
        "verified_at",
        "verified_by",
    )
    list_filter = ("status", "flow", "created_at")
    list_select_related = ("user", "verified_by")
    # The primary key breaks ties, as in the index that serves this order.
    ordering = ("-created_at", "-id")
    sortable_by = ("cognito_user", "created_at")
    # Ciphertext of up to a few kB per row that no list shows.
    list_deferred = ("encrypted_credential", "challenge_token_hash")
    # Everything a help desk needs; the credential, the challenge-token hash and the lease
    # are deliberately absent from every list, form and history entry.
    fields = ("id", *list_display, "credential_expires_at", "finished_at", "preference_pending")
    readonly_fields = fields
    inlines = [AuditEventInline]
    actions = [verify_device, cancel_enrollments, reset_totp, refresh_mfa_state]

    # --- what is visible ----------------------------------------------------------------
    @admin.display(description=_("Cognito username"), ordering="cognito_username")
    def cognito_user(self, enrollment: Enrollment) -> str:
        if enrollment.is_unproven_claim:
            return gettext("(unproven sign-in claim)")
        return enrollment.cognito_username

    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict[str, Any]:
        # Django 6.1 asks for the actions of a location (the change list, the change form)
        # and warns about an override without that parameter; 5.2 and 6.0 ask without one.
        if action_location is None:
            found = super().get_actions(request)
        else:
            found = super().get_actions(request, action_location=action_location)  # type: ignore[call-arg]
        # Bulk deletion would skip the per-row rule below (pending rows are cancelled instead).
        found.pop("delete_selected", None)
        return found

    # --- permissions --------------------------------------------------------------------
    def has_add_permission(self, request: HttpRequest) -> bool:
        # Enrollments start with the user's own Cognito sign-in, never in the admin.
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None:
            # The change form is a read-only view: saving it could overwrite a concurrent
            # transition. The model-level permission still gates the actions.
            return False
        return super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A live pending row is ended by the Cancel action (audited, and safe against a verify
        # in flight). Once past its expiry, and its verify lease if any (a verify that claimed it
        # before the expiry is still waiting for Cognito), nothing can verify it any more, so it
        # may go, also with its user: otherwise deleting that user would wait for the cleanup
        # command.
        if obj is not None and obj.is_pending:
            timestamp = timezone.now()
            if obj.expires_at > timestamp or obj.verify_in_flight(timestamp):
                return False
        return super().has_delete_permission(request, obj)

    def has_reset_permission(self, request: HttpRequest) -> bool:
        """Tell whether the admin may turn a user's TOTP off (change + verify permissions)."""
        return self.has_change_permission(request) and self.has_verify_permission(request)
